"""Governance commands: audit, usage, review, provenance, policy (audit/, guard/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from sekisho.cli.base import app, audit_log, console, err, fail, print_json, settings_of

audit_app = typer.Typer(help="監査ログの検証・表示・書き出し・保存期間. Verify, show, export and prune the audit log.",
                        no_args_is_help=True)
review_app = typer.Typer(help="確認待ちの回答の承認・修正・却下. Review held outputs.", no_args_is_help=True)
provenance_app = typer.Typer(help="署名付き来歴マニフェスト. Signed provenance manifests.", no_args_is_help=True)
policy_app = typer.Typer(help="ガバナンスポリシー. The governance policy.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(review_app, name="review")
app.add_typer(provenance_app, name="provenance")
app.add_typer(policy_app, name="policy")


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    public_key: Annotated[Optional[str], typer.Option("--public-key", help="信頼する公開鍵 (base64 Ed25519); default: the key file's")] = None,
    export: Annotated[Optional[Path], typer.Option("--export", help="書き出し済みファイルを検証 (verify an `audit export` file offline)")] = None,
) -> None:
    """ハッシュチェーンと署名付きチェックポイントを検証. Verify the hash chain and signed checkpoints."""
    if export is not None:
        from sekisho.audit.log import verify_export

        try:
            with export.open(encoding="utf-8") as fp:
                result = verify_export(fp, public_key=public_key,
                                       checkpoint_every=settings_of(ctx).audit.checkpoint_every)
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"{export}: cannot read: {exc}") from None
    else:
        result = audit_log(ctx).verify(public_key=public_key)
    if not result.ok:
        raise fail(f"改ざんを検出 (tampering detected) at record {result.first_bad_seq}: {result.reason}")
    console.print(f"[green]OK[/green]: {result.checked} 件を検証、署名付きチェックポイント {result.checkpoints} 件 "
                  f"(verified {result.checked} records, {result.checkpoints} signed checkpoints); "
                  f"head {result.head_seq} {result.head_hash[:16]}…", highlight=False)
    if result.withheld:
        # An export made with a key lacking some documents' tags: those lines' content was withheld.
        console.print(f"うち {result.withheld} 件は内容が伏せられており、連鎖上の位置のみ確認 (content withheld: "
                      f"{result.withheld} records checked for their place in the chain only)", highlight=False)


@audit_app.command("show")
def audit_show(
    ctx: typer.Context,
    seq: Annotated[Optional[int], typer.Argument(help="記録番号 (record seq); omit to list the latest")] = None,
    kind: Annotated[Optional[str], typer.Option("--kind", help="種別 (chat, ask, review.decision, ...)")] = None,
    principal: Annotated[Optional[str], typer.Option("--principal", help="利用者 (who)")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 20,
) -> None:
    """監査記録を表示. Show one record (JSON) or a list of the latest."""
    from rich.table import Table

    log = audit_log(ctx)
    if seq is not None:
        entry = log.get(seq)
        if entry is None:
            raise fail(f"audit record {seq} does not exist")
        print_json(entry.to_json())
        return
    table = Table("seq", "時刻 time (UTC)", "種別 kind", "利用者 principal", "状態 status", "hash")
    for e in log.query(kind=kind, principal=principal, limit=limit):
        record = e.record or {}
        table.add_row(str(e.seq), e.ts[:19], e.kind, str(record.get("principal", "")), str(record.get("status", "")),
                      e.hash[:12])
    console.print(table)


@audit_app.command("export")
def audit_export(
    ctx: typer.Context,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="書き出し先 (JSON lines); default stdout")] = None,
) -> None:
    """JSON Lines で書き出し. Export every record with its hashes as JSON lines."""
    import sys

    log = audit_log(ctx)
    if output is None:
        log.export(sys.stdout)
        return
    tmp = output.with_name(output.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fp:
        count = log.export(fp)
    tmp.replace(output)
    err.print(f"{count} 件を書き出しました (exported) -> {output}", highlight=False)


@audit_app.command("prune")
def audit_prune(
    ctx: typer.Context,
    before: Annotated[str, typer.Option("--before", help="この日時より古い記録を削除 (e.g. 2026-04-01)")],
) -> None:
    """保存期間を過ぎた記録を削除 (署名付きアンカーで検証可能なまま). Delete old records, keeping the chain verifiable."""
    from sekisho.identity import cli_principal

    result = audit_log(ctx).prune(before, actor=cli_principal().name)
    console.print(f"{result.deleted} 件を削除しました (pruned); anchor at record {result.anchor_seq}", highlight=False)


@audit_app.command("find-value")
def audit_find_value(ctx: typer.Context, value: Annotated[str, typer.Argument(help="調べる値 (e.g. a My Number)")]) -> None:
    """マスクされた値が含まれた記録を探す (値そのものは保存されていない). Find records whose masked values include VALUE."""
    entries = audit_log(ctx).find_value(value)
    for e in entries:
        print(f"{e.seq}\t{e.ts}\t{e.kind}\t{(e.record or {}).get('principal', '')}")


def _n(value: float | None) -> str:
    return "—" if value is None else f"{value:,.3g}" if isinstance(value, float) and value < 100 else f"{value:,.0f}"


# The terminal table: figures that go together share a column, to keep it narrow.
_USAGE_COLUMNS = [
    ("依頼", "requests", lambda f: _n(f.requests)),
    ("トークン 入/出", "tokens in/out", lambda f: f"{_n(f.prompt_tokens)}/{_n(f.completion_tokens)}"),
    ("所要時間 秒", "p50/p95 s", lambda f: f"{_n(f.latency_p50_s)}/{_n(f.latency_p95_s)}"),
    ("拒否/遮断", "refused/guard", lambda f: f"{_n(f.refused)}/{_n(f.guard_blocked)}"),
    ("マスク", "masked", lambda f: _n(f.masked)),
    ("確認待ち", "held", lambda f: _n(f.held)),
    ("エラー", "errors", lambda f: _n(f.errors)),
    ("高/低評価", "up/down", lambda f: f"{_n(f.thumbs_up)}/{_n(f.thumbs_down)}"),
    ("電力量", "energy J", lambda f: _n(f.energy_j)),
]
usage_app = typer.Typer(help="利用状況（監査ログから集計）. Usage and feedback figures from the audit log.",
                        no_args_is_help=True)
app.add_typer(usage_app, name="usage")


@usage_app.command("report")
def usage_report_command(
    ctx: typer.Context,
    since: Annotated[Optional[str], typer.Option("--since", help="開始日 (e.g. 2026-12-01, 令和8年12月1日); default: the log's start")] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="終了日 (included); default: today")] = None,
    by: Annotated[str, typer.Option("--by", help="集計単位 (comma-separated: day, app, model, role, tag, user)")] = "day",
    names: Annotated[bool, typer.Option("--names", help="利用者を実名で表示 (real names instead of pseudonyms; audited)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON で出力")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV で出力")] = False,
) -> None:
    """利用状況の集計（依頼・トークン・所要時間・拒否・マスク・確認待ち・評価・電力量）. Usage report."""
    from rich import box
    from rich.measure import Measurement
    from rich.table import Column, Table

    from sekisho.apps import Catalog
    from sekisho.audit.usage import DIMENSIONS, UsageQuery, label, usage_report
    from sekisho.identity import cli_principal

    if as_json and as_csv:
        raise fail("--json and --csv: choose one")
    settings = settings_of(ctx)
    query = UsageQuery.parse(since=since, until=until, by=by, timezone=settings.organisation.timezone, names=names)
    report = usage_report(audit_log(ctx), query, viewer=cli_principal())
    if as_json:
        print_json(report.to_json())
        return
    if as_csv:
        print(report.to_csv(), end="")
        return
    period = f"{query.since or '最初 start'} – {query.until or '今日 today'} ({query.timezone})"
    table = Table(*(f"{DIMENSIONS[d][0]}\n{DIMENSIONS[d][1]}" for d in query.by),
                  *(Column(f"{ja}\n{en}", justify="right") for ja, en, _ in _USAGE_COLUMNS),
                  title=f"利用状況 Usage {period}", box=box.SIMPLE_HEAD)
    def cells(figures) -> list[str]:
        return [cell(figures) for *_, cell in _USAGE_COLUMNS]

    titles = {app_id: f"{spec.title_ja} / {app_id}" for app_id, spec in Catalog.from_settings(settings).apps().items()}
    for row in report.rows:
        table.add_row(*(label(d, v, titles) for d, v in zip(query.by, row.key)), *cells(row.figures))
    table.add_section()
    table.add_row("合計 Total", *([""] * (len(query.by) - 1)), *cells(report.total), style="bold")
    # As wide as the figures need, whatever the terminal's width (a narrow terminal wraps the
    # lines; nothing is cut short, and output to a file or pipe is not squeezed into 80 columns).
    needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
    Console(width=max(console.width, needed)).print(table)
    console.print("全項目は --json / --csv (every figure, cancelled requests and records without energy too).",
                  highlight=False)
    if "tag" in query.by:
        console.print("複数のタグを持つ利用者の依頼は各タグに数えます (a request counts under each of its user's tags; "
                      "the rows do not add up to the total).", highlight=False)
    if not query.names and "user" in query.by:
        console.print("利用者は仮名です (users pseudonymised; --names shows real names, audited).", highlight=False)


def _reviews(ctx: typer.Context):
    from sekisho.audit import ReviewQueue

    return ReviewQueue(audit_log(ctx))


@review_app.command("list")
def review_list(
    ctx: typer.Context,
    status: Annotated[str, typer.Option("--status", help="pending | approved | edited | rejected | all")] = "pending",
) -> None:
    """確認待ちの一覧. List held outputs."""
    from rich.table import Table

    from sekisho.audit import ReviewStatus

    if status != "all" and status not in {s.value for s in ReviewStatus}:
        raise fail(f"--status {status!r}: choose pending, approved, edited, rejected or all")
    items = _reviews(ctx).list(None if status == "all" else status)
    table = Table("ID", "状態 status", "依頼者 requester", "理由 reasons", "監査 audit", "作成 created")
    for item in items:
        table.add_row(str(item.id), item.status.value, item.requester, ", ".join(item.reasons), str(item.audit_seq),
                      item.created[:19])
    console.print(table)


@review_app.command("show")
def review_show(ctx: typer.Context, review_id: Annotated[int, typer.Argument(help="レビュー番号")]) -> None:
    """確認待ちの内容を表示. Show a held output."""
    from dataclasses import asdict

    item = _reviews(ctx).get(review_id)
    print_json(asdict(item))


def _decide(ctx: typer.Context, action: str, review_id: int, **kwargs) -> None:
    from sekisho.identity import cli_principal

    item = getattr(_reviews(ctx), action)(review_id, cli_principal(), **kwargs)
    console.print(f"レビュー {item.id}: {item.status.value} ({item.reviewer})", highlight=False)


@review_app.command("approve")
def review_approve(
    ctx: typer.Context,
    review_id: Annotated[int, typer.Argument(help="レビュー番号")],
    note: Annotated[str, typer.Option("--note", help="メモ")] = "",
) -> None:
    """承認して依頼者に公開. Approve."""
    _decide(ctx, "approve", review_id, note=note)


@review_app.command("edit")
def review_edit(
    ctx: typer.Context,
    review_id: Annotated[int, typer.Argument(help="レビュー番号")],
    text: Annotated[str, typer.Option("--text", help="修正後の本文 (the corrected text)")],
    reason: Annotated[str, typer.Option("--reason", help="修正理由")] = "",
) -> None:
    """修正して承認. Replace the text and approve."""
    _decide(ctx, "edit", review_id, new_text=text, reason=reason)


@review_app.command("reject")
def review_reject(
    ctx: typer.Context,
    review_id: Annotated[int, typer.Argument(help="レビュー番号")],
    reason: Annotated[str, typer.Option("--reason", help="却下理由 (shown to the requester)")],
) -> None:
    """却下. Reject."""
    _decide(ctx, "reject", review_id, reason=reason)


@provenance_app.command("export")
def provenance_export(
    ctx: typer.Context,
    seq: Annotated[int, typer.Argument(help="監査記録番号 (audit seq of the answer)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="書き出し先 (e.g. answer.prov.json)")],
    content: Annotated[Optional[Path], typer.Option("--content", help="署名する派生文書 (default: the audited text)")] = None,
) -> None:
    """回答の来歴を署名付きで書き出し. Export the answer with a signed manifest."""
    from sekisho.audit import export_manifest
    from sekisho.identity import cli_principal

    options = {"exported_by": cli_principal().name}
    if content is not None:
        try:
            options["content"] = content.read_bytes()
        except OSError as exc:
            raise fail(f"{content}: cannot read: {exc.strerror}") from None
    try:
        export_manifest(audit_log(ctx), seq, output, **options)
    except OSError as exc:
        raise fail(f"{output}: cannot write: {exc.strerror or exc}") from None
    console.print(f"来歴を書き出しました (exported) -> {output}", highlight=False)


@provenance_app.command("verify")
def provenance_verify(
    file: Annotated[Path, typer.Argument(help="来歴ファイル (provenance file)")],
    public_key: Annotated[Optional[str], typer.Option("--public-key", help="信頼する公開鍵 (base64 Ed25519)")] = None,
) -> None:
    """来歴ファイルをオフラインで検証. Verify a provenance file offline."""
    from sekisho.audit import verify_manifest

    check = verify_manifest(file, trusted_public_key=public_key)
    if not check.ok:
        raise fail(f"検証失敗 (verification failed): {check.reason}")
    audit = check.manifest["assertions"]["sekisho.audit"]
    console.print(f"[green]OK[/green]: {check.manifest['claim_generator']}, audit record {audit['seq']} "
                  f"({audit['hash'][:12]}…), signed by {check.public_key}", highlight=False)


@policy_app.command("check")
def policy_check(
    ctx: typer.Context,
    file: Annotated[Optional[Path], typer.Argument(help="ポリシーファイル (default: guard.policy or built-in)")] = None,
) -> None:
    """ポリシーを検証し、実効内容を表示. Validate a policy and show what it does."""
    from rich.table import Table

    from sekisho.guard.findings import ENTITY_LABELS
    from sekisho.guard.policy import load_policy, policy_from_settings
    from sekisho.identity import Role

    policy = load_policy(file) if file else policy_from_settings(settings_of(ctx))
    table = Table("entity", "種類 label", "外部 external (user)", "構内 local (user)", title=policy.source)
    for entity, label in ENTITY_LABELS.items():
        table.add_row(entity, label, policy.action_for(entity, local=False, role=Role.USER),
                      policy.action_for(entity, local=True, role=Role.USER))
    console.print(table)

"""The `sekisho` command line. Each command is a thin shell over its capability's public face."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from sekisho.config import Settings, load_settings
from sekisho.errors import SekishoError

console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one clear line to stderr and return the Exit to raise; never a stack trace."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


class _OneLineErrors(TyperGroup):
    """The CLI's one error boundary: every SekishoError from any command (and from loading the
    configuration) is printed as its one line, and the command exits with the error's code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SekishoError as exc:
            raise fail(str(exc), exc.exit_code) from None


app = typer.Typer(
    cls=_OneLineErrors,
    name="sekisho",
    help="関所 sekisho: 文書検索・根拠付き回答・ガバナンス・モデル評価を一台で。",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
def _print_version(value: bool) -> None:
    if value:
        import sekisho

        print(f"sekisho {sekisho.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="設定ファイル (TOML)")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="版を表示 (print the version)")] = False,
) -> None:
    # `config check FILE` reads the file it is given: a broken default config must not stop it.
    ctx.obj = None if ctx.invoked_subcommand == "config" else load_settings(config)


def settings_of(ctx: typer.Context) -> Settings:
    return ctx.obj


# --- knowledge base: ingest, search (ingest/, retrieval/) -------------------------------------


@app.command("ingest")
def ingest_command(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="ファイルまたはフォルダ (files or folders; folders recursively)")],
    prune: Annotated[bool, typer.Option("--prune", help="消えたファイルの文書を削除 (remove documents whose files are gone)")] = False,
    tag: Annotated[Optional[list[str]], typer.Option("--tag", "-t", help="アクセスタグ (access tag; repeatable)")] = None,
    max_mb: Annotated[float, typer.Option("--max-mb", min=0.001, help="1ファイルの上限 MB (size cap per file)")] = 100.0,
) -> None:
    """文書を取り込む (txt/md/html/pdf/docx; UTF-8/Shift_JIS/EUC-JP). Ingest documents."""
    from rich.markup import escape

    from sekisho.ingest import ChunkSize, ingest_paths
    from sekisho.retrieval import open_knowledge_base

    settings = settings_of(ctx)
    if not Path(store_location(settings)).exists():
        err.print(f"新しい知識ベースを作ります (creating a new knowledge base): {escape(store_location(settings))}",
                  highlight=False, soft_wrap=True)
    with open_knowledge_base(settings) as kb:
        report = ingest_paths(
            kb, paths, prune=prune, tags=tag or (), max_bytes=int(max_mb * 2**20),
            chunk_size=ChunkSize.from_settings(settings),
        )
        _audit_ingest(ctx, report, tag or ())
        # Closing brings the BM25 index beside the store up to date: seconds after a large
        # first ingest (8.6 s at 100k chunks), so say what the wait is.
        with err.status("検索索引を更新中 (updating the search index)…"):
            kb.close()
    console.print(report.summary(), highlight=False, soft_wrap=True)
    for path in report.removed:
        console.print(f"削除 (removed): {escape(path)}", highlight=False, soft_wrap=True)
    for path, reason in report.failed:
        err.print(f"[red]失敗 (failed):[/red] {escape(path)}: {escape(reason)}", highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


def _audit_ingest(ctx: typer.Context, report, tags) -> None:  # noqa: ANN001 (IngestReport, tags)
    """What this run changed, one record per file as the server's uploads are recorded (unchanged
    files changed nothing), in one transaction: a folder of thousands costs one fsync."""
    from sekisho.identity import cli_principal

    principal = cli_principal().name
    changes = [("document.ingest", {"path": label, "status": status, "tags": list(tags)})
               for status, labels in (("added", report.added), ("updated", report.updated)) for label in labels]
    changes += [("document.ingest", {"path": label, "status": "failed", "tags": list(tags), "error": reason})
                for label, reason in report.failed]
    changes += [("document.delete", {"path": path, "reason": "pruned: its file is gone"}) for path in report.removed]
    if not changes:
        return
    log = _audit_log(ctx)
    try:
        with log.transaction() as conn:
            for kind, record in changes:
                log.append_in(conn, kind, {"principal": principal, **record})
    finally:
        log.close()


@app.command("search")
def search_command(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="検索語・質問 (query)")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="件数 (number of hits)")] = 5,
    mode: Annotated[str, typer.Option("--mode", help="hybrid | lexical | dense")] = "hybrid",
    as_json: Annotated[bool, typer.Option("--json", help="JSON で出力 (for scripts)")] = False,
) -> None:
    """文書を検索する (hybrid: BM25 + 埋め込み). Search the knowledge base."""
    import json

    from rich.markup import escape

    from sekisho.identity import cli_principal
    from sekisho.retrieval import MODES, highlight, open_knowledge_base

    if mode not in MODES:
        raise fail(f"--mode {mode!r}: choose one of {', '.join(MODES)}")
    settings = settings_of(ctx)
    with open_knowledge_base(settings) as kb:
        empty = not kb.store.documents()
        hits = [] if empty else kb.search(query, k=k, tags=cli_principal().tags, mode=mode,  # type: ignore[arg-type]
                                          min_score=settings.retrieval.min_score)
    if as_json:
        print(json.dumps([
            {
                "rank": h.rank, "score": h.score, "title": h.document.title, "path": h.document.path,
                "doc_id": h.document.id, "chunk_id": h.chunk.id, "location": h.chunk.location.label(),
                "lexical_rank": h.lexical_rank, "dense_rank": h.dense_rank,
                "matched_terms": list(h.matched_terms), "snippet": highlight(h), "text": h.chunk.text,
            }
            for h in hits
        ], ensure_ascii=False, indent=2))
        return
    if empty:
        console.print(empty_store_message(settings), highlight=False, soft_wrap=True)
        return
    if not hits:
        console.print(f"該当なし (no hits) for {escape(query)!s}")
        return
    for h in hits:
        console.print(
            f"[bold]{h.rank}. {escape(h.document.title)}[/bold]  [dim]{escape(h.document.path)} · "
            f"{escape(h.chunk.location.label())} · score {h.score:.4f}[/dim]",
            highlight=False,
        )
        console.print(f"   {highlight(h, style='rich')}", highlight=False)

documents_app = typer.Typer(help="取り込んだ文書の一覧・削除. List and delete ingested documents.", no_args_is_help=True)
app.add_typer(documents_app, name="documents")


def store_location(settings: Settings) -> str:
    """Where the knowledge base lives, for messages: a command run from another folder without
    a config file opens (or creates) another store, and the user should see which."""
    from sekisho.config import resolve_path
    from sekisho.db import redacted

    return redacted(settings.store.url) if settings.store.url else str(resolve_path(settings, settings.store.path).resolve())


def empty_store_message(settings: Settings) -> str:
    return (f"文書がまだありません (the knowledge base {store_location(settings)} is empty): "
            "`sekisho ingest PATH` で追加してください。")


@documents_app.command("list")
def documents_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="JSON で出力 (for scripts)")] = False,
) -> None:
    """取り込んだ文書の一覧. The documents in the knowledge base."""
    import datetime as dt
    import json

    from rich.table import Table

    from sekisho.retrieval import open_knowledge_base

    settings = settings_of(ctx)
    with open_knowledge_base(settings) as kb:
        documents = sorted(kb.store.documents(), key=lambda d: d.path)
    rows = [{"id": d.id, "title": d.title, "path": d.path, "media_type": d.media_type, "tags": list(d.tags),
             "ingested_at": dt.datetime.fromtimestamp(d.ingested_at, dt.timezone.utc).isoformat(timespec="seconds")}
            for d in documents]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        console.print(empty_store_message(settings), highlight=False, soft_wrap=True)
        return
    table = Table(title=f"文書 (documents) · {escape(store_location(settings))}")
    for column in ("ID", "表題 title", "ファイル path", "タグ tags"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["id"], escape(row["title"]), escape(row["path"]), escape(", ".join(row["tags"])))
    console.print(table)


@documents_app.command("delete")
def documents_delete(
    ctx: typer.Context,
    documents: Annotated[list[str], typer.Argument(help="文書IDまたは取り込んだときのパス (document id or ingested path)")],
) -> None:
    """文書を削除する（検索・回答に使われなくなる）. Delete documents; each deletion is audited."""
    from sekisho.audit.log import AuditLog
    from sekisho.identity import cli_principal
    from sekisho.retrieval import open_knowledge_base

    settings = settings_of(ctx)
    missing = []
    audit = AuditLog.from_settings(settings)
    with open_knowledge_base(settings) as kb:
        for given in documents:
            found = kb.store.document_by_id(given) or kb.store.document_by_path(given) \
                or kb.store.document_by_path(str(Path(given).resolve()))
            if found is None:
                missing.append(given)
                err.print(f"[red]見つかりません (no such document):[/red] {escape(given)}", highlight=False, soft_wrap=True)
                continue
            kb.delete(found.id)
            audit.append("document.delete", {"principal": cli_principal().name, "document_id": found.id,
                                             "path": found.path})
            console.print(f"削除 (deleted): {found.id}  {escape(found.path)}", highlight=False, soft_wrap=True)
    audit.close()
    if missing:
        raise typer.Exit(1)


# --- models and answers: models, ask (models/, answer/) ---------------------------------------


@app.command("models")
def models_command(
    ctx: typer.Context,
    check: Annotated[bool, typer.Option("--check/--no-check", help="接続・読み込みを確認する (probe each backend)")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="JSON で出力 (for scripts)")] = False,
) -> None:
    """設定済みのモデル一覧と状態. List configured model backends and whether they can serve."""
    import json

    from rich.markup import escape
    from rich.table import Table

    from sekisho.models import BackendError, backend_names, open_backend

    settings = settings_of(ctx)
    rows = []
    for name in backend_names(settings):
        config = settings.models.backends[name]
        row = {"name": name, "kind": config.kind, "model": config.model, "local": config.local is True,
               "version": "", "default": name == settings.models.default, "ok": None, "status": "not checked"}
        try:
            backend = open_backend(settings, name)
            info = backend.info()
            row.update(model=info.model, local=info.local, version=info.version)
            if check:
                backend.check()
                row.update(ok=True, status="reachable")
        except BackendError as exc:
            row.update(ok=False, status=str(exc))
        rows.append(row)
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        table = Table(title="モデル (models)")
        for column in ("名前 name", "種類 kind", "モデル model", "所在 locality", "状態 status"):
            table.add_column(column, overflow="fold")
        for row in rows:
            status = {True: "[green]利用可 reachable[/green]", None: "[dim]未確認 not checked[/dim]"}.get(
                row["ok"], f"[red]{escape(row['status'])}[/red]")
            version = f" [dim]{row['version']}[/dim]" if row["version"] else ""
            table.add_row(escape(row["name"]) + (" *" if row["default"] else ""), row["kind"],
                          escape(row["model"] or "-") + version,
                          "構内 local" if row["local"] else "外部 external", status)
        console.print(table)
    if any(row["ok"] is False for row in rows):
        raise typer.Exit(1)

@app.command("ask")
def ask_command(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="質問 (question)")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="使うモデル名 (backend name)")] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=50, help="参照する資料の数 (passages to retrieve)")] = 5,
    tag: Annotated[Optional[list[str]], typer.Option("--tag", help="この閲覧タグの文書だけ (access tags)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON で出力 (one object)")] = False,
) -> None:
    """知識ベースに質問し、出典付きで回答. Ask the knowledge base; answer with sources and support check.

    The question goes through the same governed request path as the HTTP API: guards on the
    question and the retrieved passages, masking or routing per policy, output checks, review
    holds, audit."""
    import dataclasses
    import json
    import sys

    from rich.markup import escape

    from sekisho.identity import cli_principal
    from sekisho.request import RequestPath
    from sekisho.retrieval import open_knowledge_base

    if not question.strip():
        raise fail("質問が空です (the question is empty)")
    settings = settings_of(ctx)
    principal = cli_principal()
    if tag:
        principal = dataclasses.replace(principal, tags=tuple(tag))
    path = RequestPath(settings)
    kb = open_knowledge_base(settings)
    try:
        governed = path.ask_stream(question, principal=principal, backend=model or settings.models.default,
                                   kb=kb, k=k)
        for piece in governed:
            if not as_json:
                sys.stdout.write(piece)
                sys.stdout.flush()
        result = governed.result
        # Only an answer with no hits needs to know why; listing documents on every ask is waste.
        empty = result.answer is not None and not result.answer.hits and not kb.store.documents()
    finally:
        kb.close()
        path.close()
    if result.status != "ok":
        if as_json:
            print(json.dumps({"question": question, "status": result.status, "message": result.message,
                              "review_id": result.review_id, "audit_seq": result.audit_seq,
                              "findings": [f.to_json() for f in result.findings]}, ensure_ascii=False, indent=2))
        else:
            print()
            err.print(f"[yellow]{escape(result.message)}[/yellow]", highlight=False, soft_wrap=True)
        raise typer.Exit(0 if result.status == "held" else 1)
    answer = result.answer
    report = answer.faithfulness
    if as_json:
        print(json.dumps({**_answer_json(answer), "backend": result.backend, "audit_seq": result.audit_seq,
                          "guard": [f.to_json() for f in result.findings]}, ensure_ascii=False, indent=2))
        return
    print()
    console.print(f"[dim]監査記録 (audit record) #{result.audit_seq} · {escape(result.backend)}[/dim]", highlight=False)
    if empty:
        err.print(empty_store_message(settings), highlight=False, soft_wrap=True)
    if answer.citations:
        console.print("\n[bold]出典 (sources)[/bold]")
        for c in answer.citations:
            console.print(f"  [{c.n}] {escape(c.path)}  『{escape(c.title)}』  {escape(c.location)}", highlight=False)
    for n in answer.invalid_citations:
        console.print(f"  [red][{n}] 存在しない資料番号 (cites no retrieved passage)[/red]", highlight=False)
    if answer.not_found:
        return
    unsupported = report.unsupported
    if not unsupported and not report.bad_citations:
        console.print(f"[green]根拠確認: すべての文が資料に支持されています (supported; score {report.score:.2f})[/green]")
    for s in unsupported:
        why = f" — 資料にない: {', '.join(s.missing)}" if s.missing else ""
        console.print(f"[yellow]根拠不十分 (unsupported):[/yellow] {escape(s.text)}{escape(why)}", highlight=False)
    for text, n in report.bad_citations:
        console.print(f"[yellow]出典 [{n}] はこの文を支持しません (citation does not support):[/yellow] {escape(text)}",
                      highlight=False)


def _answer_json(answer) -> dict:
    report = answer.faithfulness
    return {
        "question": answer.question,
        "answer": answer.text,
        "not_found": answer.not_found,
        "model": answer.completion.model,
        "latency_s": round(answer.completion.latency_s, 3),
        "citations": [vars(c) for c in answer.citations],
        "invalid_citations": list(answer.invalid_citations),
        "passages": [{"n": i, "path": h.document.path, "title": h.document.title, "chunk_id": h.chunk.id,
                      "location": h.chunk.location.label(), "score": h.score} for i, h in enumerate(answer.hits, 1)],
        "faithfulness": {
            "score": report.score,
            "faithful": report.faithful,
            "sentences": [{"text": s.text, "cited": list(s.cited), "support": s.support, "supported": s.supported,
                           "missing": list(s.missing), "bad_citations": list(s.bad_citations)}
                          for s in report.sentences],
        },
    }

# --- governance: guard, audit, provenance, review (guard/, audit/) ---------------------------

audit_app = typer.Typer(help="監査ログの検証・表示・書き出し・保存期間. Verify, show, export and prune the audit log.",
                        no_args_is_help=True)
review_app = typer.Typer(help="確認待ちの回答の承認・修正・却下. Review held outputs.", no_args_is_help=True)
provenance_app = typer.Typer(help="署名付き来歴マニフェスト. Signed provenance manifests.", no_args_is_help=True)
policy_app = typer.Typer(help="ガバナンスポリシー. The governance policy.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(review_app, name="review")
app.add_typer(provenance_app, name="provenance")
app.add_typer(policy_app, name="policy")


def _audit_log(ctx: typer.Context):
    from sekisho.audit import AuditLog

    return AuditLog.from_settings(settings_of(ctx))


def _print_json(value) -> None:
    import json

    print(json.dumps(value, ensure_ascii=False, indent=2))


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
        result = _audit_log(ctx).verify(public_key=public_key)
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

    log = _audit_log(ctx)
    if seq is not None:
        entry = log.get(seq)
        if entry is None:
            raise fail(f"audit record {seq} does not exist")
        _print_json(entry.to_json())
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

    log = _audit_log(ctx)
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

    result = _audit_log(ctx).prune(before, actor=cli_principal().name)
    console.print(f"{result.deleted} 件を削除しました (pruned); anchor at record {result.anchor_seq}", highlight=False)


@audit_app.command("find-value")
def audit_find_value(ctx: typer.Context, value: Annotated[str, typer.Argument(help="調べる値 (e.g. a My Number)")]) -> None:
    """マスクされた値が含まれた記録を探す (値そのものは保存されていない). Find records whose masked values include VALUE."""
    entries = _audit_log(ctx).find_value(value)
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
    report = usage_report(_audit_log(ctx), query, viewer=cli_principal())
    if as_json:
        _print_json(report.to_json())
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

    return ReviewQueue(_audit_log(ctx))


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
    _print_json(asdict(item))


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
        export_manifest(_audit_log(ctx), seq, output, **options)
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

guard_app = typer.Typer(help="個人情報・機密表示・著作権の検査. Scan text for PII, markings and copyright issues.",
                        no_args_is_help=True)
app.add_typer(guard_app, name="guard")


def _read_scan_input(file: str) -> str:
    """The text of FILE (any format ingest reads; Shift_JIS/EUC-JP detected) or of stdin ('-')."""
    import sys

    from sekisho.ingest import IngestError, decode_text, extract, media_type_for
    from sekisho.ingest.decode import UndecodableText

    name = "stdin.txt" if file == "-" else file
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise fail(f"{file}: cannot read: {exc.strerror or exc}") from None
    try:
        if media_type_for(name) in (None, "text/plain"):
            return decode_text(data)[0]  # .log, .csv and unknown suffixes are scanned as text
        return extract(data, name=name).text
    except UndecodableText as exc:
        raise IngestError(file, str(exc)) from None


@guard_app.command("scan")
def guard_scan(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="検査するファイル、'-' で標準入力 (file to scan, '-' for stdin)")] = "-",
    as_json: Annotated[bool, typer.Option("--json", help="1 行 1 件の JSON (one JSON object per line)")] = False,
    backend: Annotated[Optional[str], typer.Option("--backend", help="送信先モデル (decides local/external policy)")] = None,
    role: Annotated[Optional[str], typer.Option("--role", help="利用者の役割 (admin, reviewer, user, auditor)")] = None,
    entity: Annotated[Optional[list[str]], typer.Option("--entity", "-e", help="検査する種別に限定 (e.g. MY_NUMBER; PERSON needs GiNZA)")] = None,
) -> None:
    """検出結果 (種別・位置・該当文字列・ポリシー上の処置) を表示. Print every finding and the action the policy would take."""
    import json

    from sekisho.config import resolve_path
    from sekisho.guard import check_output, check_prompt, load_registry, scan
    from sekisho.guard.policy import policy_from_settings
    from sekisho.identity import Role, cli_principal
    from sekisho.models import open_backend

    settings = settings_of(ctx)
    try:
        who = Role(role) if role else cli_principal().role
    except ValueError:
        raise fail(f"--role: unknown role {role!r}; choose from {', '.join(r.value for r in Role)}") from None
    backend_name = backend or settings.models.default
    local = open_backend(settings, backend_name).info().local
    policy = policy_from_settings(settings)
    text = _read_scan_input(file)
    findings = scan(text, entities=entity or None)
    if settings.guard.copyright_registry and not entity:
        # Both readings of the registry: a request to imitate, and text resembling a work.
        registry = load_registry(resolve_path(settings, settings.guard.copyright_registry))
        copyright_findings = check_prompt(text, registry) + check_output(text, registry, policy.copyright_threshold)
        findings = sorted(findings + copyright_findings, key=lambda f: (f.start, f.end))
    for f in findings:
        action = policy.action_for(f.entity, local=local, role=who).value
        if as_json:
            print(json.dumps({**f.to_dict(), "action": action}, ensure_ascii=False))
        else:
            shown = f.text.replace("\n", "\\n").replace("\t", "\\t")  # one finding, one line
            print(f"{f.start}-{f.end}\t{f.entity} ({f.label})\t{shown}\t{action}")
    if not as_json:
        where = "ローカル (local)" if local else "外部 (external)"
        err.print(f"{len(findings)} 件 (findings); backend {backend_name}: {where}; role {who.value}", highlight=False,
                  soft_wrap=True)


# --- server and keys (server/) ----------------------------------------------------------------


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    host: Annotated[Optional[str], typer.Option("--host", help="待ち受けアドレス (bind address; default 127.0.0.1)")] = None,
    port: Annotated[Optional[int], typer.Option("--port", min=1, max=65535, help="ポート (default 8765)")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="設定ファイル (TOML)")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", min=1, max=64,
                                                   help="ワーカープロセス数 (worker processes; default server.workers)")] = None,
) -> None:
    """API・OpenAI互換ゲートウェイ・Web画面を起動する. Serve the API, gateway and web UI."""
    from sekisho.server.app import serve

    settings = load_settings(config) if config else settings_of(ctx)
    if workers is not None:
        settings = settings.model_copy(update={"server": settings.server.model_copy(update={"workers": workers})})
    bind = host or settings.server.host
    if bind not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]注意 (warning):[/yellow] {bind} で待ち受けます。TLS 終端のリバースプロキシの背後に置いてください "
                  "(listening beyond loopback: put a TLS-terminating proxy in front).", highlight=False)
    try:
        serve(settings, host=bind, port=port)
    except OSError as exc:
        raise fail(f"{bind}:{port or settings.server.port}: cannot listen: {exc.strerror or exc}") from None


keys_app = typer.Typer(help="APIキーの発行・一覧・失効. Manage API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--role", help="admin | reviewer | user | auditor")],
    name: Annotated[str, typer.Option("--name", help="キーの名前 (who or what uses it)")] = "",
    tag: Annotated[Optional[list[str]], typer.Option("--tag", "-t", help="閲覧できる文書タグ (access tag; repeatable)")] = None,
    requests_per_minute: Annotated[Optional[int], typer.Option("--requests-per-minute", min=0,
                                                               help="1分あたりのリクエスト数の上限")] = None,
    tokens_per_day: Annotated[Optional[int], typer.Option("--tokens-per-day", min=0,
                                                          help="1日あたりのトークン数の上限")] = None,
    tokens_per_month: Annotated[Optional[int], typer.Option("--tokens-per-month", min=0,
                                                            help="1か月あたりのトークン数の上限")] = None,
) -> None:
    """キーを発行し、一度だけ表示する. Create a key; the secret is printed once. Its own quota
    limits, if given, apply with the role's and the user's; the tightest wins."""
    from sekisho.config import QuotaLimits
    from sekisho.identity import Role
    from sekisho.server.keys import open_key_store

    try:
        chosen = Role(role)
    except ValueError:
        raise fail(f"--role {role!r}: choose one of {', '.join(r.value for r in Role)}") from None
    limits = QuotaLimits(requests_per_minute=requests_per_minute, tokens_per_day=tokens_per_day,
                         tokens_per_month=tokens_per_month)
    store = open_key_store(settings_of(ctx))
    try:
        key, secret = store.create(chosen, name, tuple(tag or ()), limits)
    finally:
        store.close()
    err.print(f"キー {key.id} ({key.role.value}) を発行しました。この値は二度と表示されません。"
              f"/ Key {key.id} created; the secret below is shown only once.", highlight=False)
    print(secret)


@keys_app.command("list")
def keys_list(ctx: typer.Context) -> None:
    """発行済みのキー一覧 (秘密は表示しない). List keys (never their secrets)."""
    import datetime as dt

    from rich.table import Column, Table

    from sekisho.server.keys import open_key_store

    store = open_key_store(settings_of(ctx))
    try:
        keys = store.list()
    finally:
        store.close()
    if not keys:
        console.print("キーはまだありません (no keys): `sekisho keys create --role admin`")
        return

    def when(ts: float | None) -> str:
        return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M") if ts else "-"

    def limits(key) -> str:
        return ", ".join(f"{name} {value:,}" for name, value in key.limits.model_dump(exclude_none=True).items())

    # The limits column only when a key has limits of its own: the table stays readable at 80 columns.
    with_limits = any(limits(k) for k in keys)
    table = Table(Column("ID", no_wrap=True), "名前 name", "役割 role", "タグ tags",
                  *(["上限 limits"] if with_limits else []), "発行 created", "最終利用 last used", "状態 state")
    for k in keys:
        state = "有効 active" if k.active else f"失効 revoked {when(k.revoked_at)}"
        table.add_row(k.id, k.name, k.role.value, ", ".join(k.tags), *([limits(k) or "-"] if with_limits else []),
                      when(k.created_at), when(k.last_used_at), state)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(help="キーID (from `keys list`)")]) -> None:
    """キーを失効させる. Revoke a key."""
    from sekisho.server.keys import open_key_store

    store = open_key_store(settings_of(ctx))
    try:
        store.revoke(key_id)
    finally:
        store.close()
    console.print(f"キー {key_id} を失効させました (revoked).", highlight=False)


quota_app = typer.Typer(help="利用枠 (リクエスト数・トークン数の上限と使用量). Quotas: limits and current use.",
                        no_args_is_help=True)
app.add_typer(quota_app, name="quota")


@quota_app.command("show")
def quota_show(
    ctx: typer.Context,
    user: Annotated[Optional[str], typer.Option("--user", "-u", help="利用者名またはキーID (principal name or key id)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON で出力")] = False,
) -> None:
    """現在の使用量と上限. Current use against the limits: everyone, or one principal."""
    from rich.table import Column, Table

    from sekisho.server.keys import open_key_store
    from sekisho.server.quotas import Quotas

    settings = settings_of(ctx)
    store = open_key_store(settings)
    try:
        quotas = Quotas(store.db, settings.quotas, timezone=settings.organisation.timezone)
        usages = [quotas.find(user, store)] if user else quotas.everyone(store)
    finally:
        store.close()
    if as_json:
        _print_json([{"principal": u.principal, "role": u.role, "key_id": u.key_id,
                      "quotas": [q.to_json() for q in u.quotas], "requests_today": u.requests_today,
                      "requests_this_month": u.requests_this_month} for u in usages])
        return
    if not usages:
        console.print("まだ利用はありません (no use yet)")
        return

    def cell(use) -> str:
        used = f"{use.used:,}" + (f" / {use.limit:,} ({use.scope})" if use.limit is not None else " / -")
        return f"[bold red]{used}[/bold red]" if use.exhausted else used

    table = Table(Column("利用者 principal", overflow="fold"), "役割 role", "今分の件数 requests/min",
                  "今日のトークン tokens/day", "今月のトークン tokens/month", "件数 今日/今月 requests day/month",
                  caption=f"使用量 / 上限 (設定元) · used / limit (set by) · 日・月の区切り (days begin at midnight): "
                          f"{settings.organisation.timezone}")
    for u in usages:
        table.add_row(u.principal, u.role, *(cell(q) for q in u.quotas), f"{u.requests_today:,} / {u.requests_this_month:,}")
    console.print(table)


# --- arena (arena/) ---------------------------------------------------------------------------

arena_app = typer.Typer(help="モデル評価アリーナ. Compare models on Japanese task suites.", no_args_is_help=True)
app.add_typer(arena_app, name="arena")


@arena_app.command("run")
def arena_run(
    ctx: typer.Context,
    suite: Annotated[str, typer.Argument(help="スイート名または TOML ファイル (suite name or .toml path)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="実行ディレクトリ (run directory; reuse it to resume)")],
    models: Annotated[Optional[str], typer.Option("--models", "-m", help="バックエンド名をカンマ区切りで (a,b,c)")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", min=1, help="タスクごとの問題数上限 (items per task)")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="データのフォルダまたはファイル (data root or file)")] = None,
    tasks: Annotated[Optional[str], typer.Option("--tasks", "-t", help="実行するタスク (task ids, a,b; default all)")] = None,
    watts_per_core: Annotated[Optional[float], typer.Option("--watts-per-core", min=0.0,
                                                            help="RAPL がないときの推定用 W/コア (default models.watts_per_core)")] = None,
) -> None:
    """スイートを実行してレポートを書く. Run a suite; writes OUT/report.html and OUT/report.json."""
    from rich.markup import escape

    from sekisho.arena import load_suite, run_suite

    try:
        spec = load_suite(suite)
        names = [m.strip() for m in models.split(",") if m.strip()] if models else list(spec.models)
        only = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
        summary = run_suite(settings_of(ctx), spec, names, out, limit=limit, data=data, tasks=only,
                            watts_per_core=watts_per_core, console=err)
    except KeyboardInterrupt:
        raise fail(f"中断しました (interrupted): finished items are saved in {out}; run the same command to resume",
               130) from None
    console.print(f"完了 (done): {summary.done} 問を実行、{summary.skipped} 問は前回分を再利用 (resumed) · "
                  f"suite hash {summary.suite_hash}", highlight=False, soft_wrap=True)
    for line in summary.errors[:10]:
        err.print(f"[yellow]error:[/yellow] {escape(line)}", highlight=False, soft_wrap=True)
    console.print(f"レポート (report): {summary.report_html}  {summary.report_json}", highlight=False, soft_wrap=True)
    if summary.errors:
        raise typer.Exit(1)


@arena_app.command("list")
def arena_list() -> None:
    """同梱スイートとタスクの一覧. List the shipped suites and their tasks."""
    from rich.markup import escape
    from rich.table import Table

    from sekisho.arena import ArenaError, load_suite, shipped_suites

    table = Table(title="アリーナのスイート (arena suites)")
    for column in ("スイート suite", "タスク task", "種類 kind", "採点 scorer", "データ data"):
        table.add_column(column, overflow="fold")
    for path in shipped_suites():
        try:
            spec = load_suite(path)
        except ArenaError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            continue
        for i, task in enumerate(spec.tasks):
            table.add_row(f"{escape(spec.name)}\n{escape(spec.title_ja)}" if i == 0 else "",
                          f"{escape(task.id)}\n{escape(task.title_ja)}", task.kind, task.scorer,
                          escape(task.data or f"(生成 generated: {task.format})"))
    console.print(table)


@arena_app.command("report")
def arena_report(
    run_dir: Annotated[Path, typer.Argument(help="arena run で使った実行ディレクトリ (run directory)")],
) -> None:
    """保存済みの結果からレポートを作り直す. Rebuild report.html/json from stored results."""
    from sekisho.arena import rebuild_report

    html, js = rebuild_report(run_dir)
    console.print(f"レポート (report): {html}  {js}", highlight=False, soft_wrap=True)


# --- 公用文校正 proofreading (proofread/) -------------------------------------------------------


@app.command("proofread")
def proofread_command(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="校正するファイル、または - で標準入力 (txt/md/html/pdf/docx; UTF-8/Shift_JIS/EUC-JP)")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON で出力: start/end は本文の文字位置 (character offsets)")] = False,
    fix: Annotated[bool, typer.Option("--fix", help="修正を適用し差分を表示 (apply the suggestions; shows a diff)")] = False,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="修正後の文章の書き出し先 (write the corrected text here, UTF-8)")] = None,
    dictionary: Annotated[Optional[Path], typer.Option("--dictionary", "-d", help="組織の辞書 TOML (default: [proofread] dictionary)")] = None,
) -> None:
    """公用文の表記を校正する. Proofread a document against the official style (公用文作成の考え方).

    Each finding names its rule, the guideline and section it comes from, and the suggested form.
    --fix rewrites a .txt/.md file in its own encoding (or writes --output, or prints the corrected
    text when reading standard input), always showing the diff; nothing is sent to any model."""
    import bisect
    import difflib
    import json
    import sys

    from sekisho.proofread import (
        ProofreadError,
        apply_fixes,
        configured_dictionary,
        load_dictionary,
        proofread,
        read_document,
    )

    try:
        org = load_dictionary(dictionary) if dictionary else configured_dictionary(settings_of(ctx))
        document = read_document(sys.stdin.buffer.read(), name="stdin.txt") if file == "-" else read_document(file)
    except ProofreadError as exc:
        raise fail(str(exc)) from None
    if fix and file != "-" and output is None and not document.rewritable:
        raise fail(f"{file}: a {document.media_type} file cannot be rewritten in place; use --output FILE.txt")
    text = document.text
    findings = proofread(text, dictionary=org)
    line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def place(offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(line_starts, offset)
        return line, offset - line_starts[line - 1] + 1

    name = "-" if file == "-" else file
    if as_json:
        rows = [{**f.to_json(), "line": place(f.start)[0], "column": place(f.start)[1]} for f in findings]
        extracted = {} if document.rewritable else {"text": text}  # what the offsets index in a PDF, DOCX or HTML
        print(json.dumps({"file": name, "media_type": document.media_type, "encoding": document.encoding,
                          "chars": len(text), **extracted, "findings": rows}, ensure_ascii=False, indent=2))
    else:
        report = err if fix and file == "-" and output is None else console  # keep stdout for the corrected text
        for f in findings:
            line, column = place(f.start)
            change = f"「{f.text}」→「{f.suggestion}」" if f.suggestion is not None else f"「{f.text[:20]}{'…' if len(f.text) > 20 else ''}」"
            report.print(f"{escape(name)}:{line}:{column}  [bold]{escape(f.family_label)}[/bold]  {escape(change)}  "
                         f"[dim]{escape(f.rule)} · {escape(str(f.source))}[/dim]", highlight=False, soft_wrap=True)
        fixable = sum(f.suggestion is not None for f in findings)
        report.print(f"指摘 {len(findings)} 件、うち修正案あり {fixable} 件 ({len(findings)} findings, {fixable} with a "
                     f"suggestion) · {len(text):,} 字", highlight=False)
    if not fix:
        return
    corrected = apply_fixes(text, findings)
    if corrected == text:
        err.print("修正する指摘はありません (nothing to fix)", highlight=False)
        return
    diff = difflib.unified_diff(text.splitlines(keepends=True), corrected.splitlines(keepends=True),
                                fromfile=name, tofile=f"{name} (修正後 / corrected)")
    # The diff goes where it cannot mix with the corrected text or the JSON on stdout.
    (sys.stderr if file == "-" and output is None or as_json else sys.stdout).writelines(
        line if line.endswith("\n") else line + "\n" for line in diff)
    try:
        if output is not None:
            output.write_text(corrected, encoding="utf-8")
            where = str(output)
        elif file == "-":
            sys.stdout.write(corrected)
            return
        else:
            Path(file).write_bytes(document.encode(corrected))
            where = f"{file} ({document.encoding})"
    except ProofreadError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"{output or file}: cannot write: {exc.strerror or exc}") from None
    err.print(f"修正を書き込みました (wrote the corrected text): {escape(where)}", highlight=False, soft_wrap=True)


# --- integrity: check (check.py) --------------------------------------------------------------


@app.command("check")
def check_command(ctx: typer.Context) -> None:
    """保存データの整合性を確認 (変更はしない). Check the store, its indexes, the audit chain and the upload
    queue; one line per problem, exit 1 if there is any."""
    from sekisho.check import check

    report = check(settings_of(ctx))
    for line in report.checked:
        console.print(f"ok: {escape(line)}", highlight=False, soft_wrap=True)
    for line in report.notes:
        console.print(f"note: {escape(line)}", highlight=False, soft_wrap=True)
    for line in report.problems:
        err.print(f"[red]problem:[/red] {escape(line)}", highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


# --- task apps (apps/) --------------------------------------------------------------------------

app_app = typer.Typer(help="業務アプリ（要約・翻訳・議事録…）. Task apps (summarise, translate, minutes...).",
                      no_args_is_help=True)
app.add_typer(app_app, name="app")


@app_app.command("list")
def app_list(ctx: typer.Context) -> None:
    """アプリの一覧. List the task apps (shipped and the organisation's own)."""
    from rich.table import Table

    from sekisho.apps import Catalog

    catalog = Catalog.from_settings(settings_of(ctx))
    table = Table("ID", "名前 name", "入力 inputs", "生成モデル generative model", "由来 source")
    for spec in sorted(catalog.apps().values(), key=lambda a: (not a.shipped, a.id)):
        table.add_row(spec.id, f"{spec.title_ja}\n{spec.title_en}", ", ".join(i.name for i in spec.inputs),
                      "必要 needed" if spec.needs_generation else "不要 not needed", "同梱 shipped" if spec.shipped else spec.source)
    console.print(table)
    for problem in catalog.problems:
        err.print(f"[yellow]warning:[/yellow] {escape(problem)}", highlight=False, soft_wrap=True)


@app_app.command("run")
def app_run(
    ctx: typer.Context,
    app_id: Annotated[str, typer.Argument(help="アプリID (e.g. summarise)")],
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="文書ファイル (the app's file input)")] = None,
    text: Annotated[Optional[str], typer.Option("--text", help="本文 ('-' で標準入力; the app's text input)")] = None,
    value: Annotated[Optional[list[str]], typer.Option("--input", "-i", help="入力 name=value (repeatable)")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="使うモデル (backend name)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON で出力")] = False,
) -> None:
    """アプリを実行する. Run a task app; every model call is governed and audited with the app's id."""
    import asyncio
    import json
    import sys

    from sekisho.apps import Catalog, Upload, choose_backend, prepare, run
    from sekisho.identity import cli_principal
    from sekisho.request import RequestPath

    settings = settings_of(ctx)
    spec = Catalog.from_settings(settings).get(app_id)
    values = dict(item.split("=", 1) for item in value or () if "=" in item)
    bad = [item for item in value or () if "=" not in item]
    if bad:
        raise fail(f"--input {bad[0]!r}: write name=value")
    uploads = {}
    if file is not None:
        name = next((i.name for i in spec.inputs if i.type == "file"), None)
        if name is None:
            raise fail(f"{app_id}: this app takes no file")
        try:
            uploads[name] = Upload(file.name, file.read_bytes())
        except OSError as exc:
            raise fail(f"{file}: cannot read: {exc.strerror or exc}") from None
    if text is not None:
        name = next((i.name for i in spec.inputs if i.type == "textarea"), None)
        if name is None:
            raise fail(f"{app_id}: this app takes no text")
        values[name] = sys.stdin.read() if text == "-" else text
    prepared = prepare(spec, values, uploads)
    path = RequestPath(settings)
    kb = None
    try:
        backend = choose_backend(spec, model, settings, path)
        if spec.retrieval != "none":
            from sekisho.retrieval import open_knowledge_base

            kb = open_knowledge_base(settings)

        async def consume() -> list:
            parts = []
            async for kind, item in run(path, spec, prepared, principal=cli_principal(), backend=backend, kb=kb,
                                        settings=settings):
                if kind == "part" and not as_json:
                    console.print(f"\n[bold]{escape(item)}[/bold]", highlight=False)
                elif kind == "delta" and not as_json:
                    sys.stdout.write(item)
                    sys.stdout.flush()
                elif kind == "done":
                    parts = item
            return parts

        parts = asyncio.run(consume())
    finally:
        if kb is not None:
            kb.close()
        path.close()
    if as_json:
        print(json.dumps({"app": spec.id, "version": spec.version, "backend": backend,
                          "parts": [p.to_json() for p in parts]}, ensure_ascii=False, indent=2))
        return
    print()
    for part in parts:
        if part.status != "ok":
            err.print(f"[yellow]{escape(part.message)}[/yellow]", highlight=False, soft_wrap=True)
        console.print(f"[dim]監査記録 (audit record) #{part.audit_seq} · {escape(part.backend)}[/dim]", highlight=False)
    if any(p.status == "blocked" for p in parts):
        raise typer.Exit(1)


# --- operations: config check (server/preflight.py) -----------------------------------------

config_app = typer.Typer(help="設定ファイルの確認. Check a configuration file.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="設定ファイル (sekisho.toml)")],
    reach: Annotated[bool, typer.Option("--reach", help="リモートのモデルにも接続する (call every model backend)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON で出力 (for scripts)")] = False,
) -> None:
    """サーバーが読み込むものをすべて確認. Load everything the server would: policy, registry, apps, models, paths."""
    import json

    from rich.table import Table

    from sekisho.server.preflight import run_checks

    results = run_checks(load_settings(file), reach=reach)
    if as_json:
        print(json.dumps([vars(r) for r in results], ensure_ascii=False, indent=2))
    else:
        table = Table(title=f"設定の確認 (configuration check) · {escape(str(file))}")
        for column in ("", "確認 check", "結果 result"):
            table.add_column(column, overflow="fold")
        for r in results:
            table.add_row("[green]✓[/green]" if r.ok else "[red]✗[/red]", r.name, escape(r.detail))
        console.print(table)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


# --- scale out: copy an SQLite deployment into PostgreSQL (store/, audit/, server/keys) -------


@app.command("migrate")
def migrate_command(
    ctx: typer.Context,
    source: Annotated[Optional[Path], typer.Option("--from", help="元のストア (SQLite file); default: [store] path")] = None,
    target: Annotated[Optional[str], typer.Option("--to", help="移行先 postgresql:// URL; default: [store] url")] = None,
    audit: Annotated[Optional[Path], typer.Option("--audit", help="元の監査ログ; default: [audit] path")] = None,
) -> None:
    """SQLiteの文書・監査ログ・レビュー・APIキーをPostgreSQLへ複製 (copy documents, embeddings, the audit chain,
    reviews and keys into PostgreSQL; verifies the chain and counts; safe to rerun)."""
    from sekisho.audit import AuditLog, ReviewQueue
    from sekisho.config import resolve_path
    from sekisho.db import open_database
    from sekisho.server.keys import KeyStore, keys_beside
    from sekisho.store import SQLiteStore, is_url, open_store
    from sekisho.store.migrate import copy_store

    settings = settings_of(ctx)
    url = target or settings.store.url
    if not is_url(url):
        raise fail("--to: give a postgresql:// URL (or set [store] url)")
    source = source or resolve_path(settings, settings.store.path)
    audit = audit or resolve_path(settings, settings.audit.path)
    for path in (source, audit):
        if not path.exists():
            raise fail(f"{path}: no such file to migrate from")
    key_path = resolve_path(settings, settings.audit.key_path)
    old_store, new_store = SQLiteStore(source, lexical_index=False), open_store(url)
    old_audit, new_audit = AuditLog(audit, key_path=key_path), AuditLog(url, key_path=key_path)
    try:
        with new_store.bulk_load():  # one index build instead of an insert per vector
            store = copy_store(old_store, new_store)
        records = new_audit.copy_from(old_audit)
        reviews = ReviewQueue(new_audit).copy_from(ReviewQueue(old_audit))
        keys = 0
        if keys_beside(audit).exists():
            old_keys = KeyStore(open_database(keys_beside(audit)))
            keys = KeyStore(new_audit.db).copy_from(old_keys)
            old_keys.close()
        verified, expected = new_audit.verify(), old_audit.head()
    finally:
        for handle in (old_store, new_store, old_audit, new_audit):
            handle.close()
    console.print(f"documents {store.documents} ({store.copied} copied, {store.unchanged} unchanged); chunks "
                  f"{store.chunks_in_target}/{store.chunks}; audit records +{records}; reviews {reviews}; keys {keys}",
                  highlight=False)
    if not verified.ok or (verified.head_seq, verified.head_hash) != expected:
        raise fail(f"{new_store.where}: the copied audit chain does not verify as the source's: {verified.reason} "
                   f"(head {verified.head_seq}, source head {expected[0]})")
    if store.chunks_in_target != store.chunks:
        raise fail(f"{new_store.where}: {store.chunks - store.chunks_in_target} chunks missing after the copy")
    console.print(f"[green]OK[/green]: audit chain verifies, head {verified.head_seq} {verified.head_hash[:16]}… "
                  f"({verified.checkpoints} signed checkpoints)", highlight=False)

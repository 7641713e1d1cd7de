"""The `sekisho` command line. Each command is a thin shell over its capability's public face."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from sekisho.config import ConfigError, Settings, load_settings

app = typer.Typer(
    name="sekisho",
    help="関所 sekisho: 文書検索・根拠付き回答・ガバナンス・モデル評価を一台で。",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one clear line to stderr and return the Exit to raise; never a stack trace."""
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="設定ファイル (TOML)")] = None,
) -> None:
    try:
        ctx.obj = load_settings(config)
    except ConfigError as exc:
        raise fail(str(exc)) from None


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
    from sekisho.retrieval import EmbedderError, open_knowledge_base
    from sekisho.store import StoreError

    settings = settings_of(ctx)
    try:
        with open_knowledge_base(settings) as kb:
            report = ingest_paths(
                kb, paths, prune=prune, tags=tag or (), max_bytes=int(max_mb * 2**20),
                chunk_size=ChunkSize.from_settings(settings),
            )
    except (StoreError, EmbedderError) as exc:
        raise fail(str(exc)) from None
    console.print(report.summary(), highlight=False)
    for path in report.removed:
        console.print(f"削除 (removed): {escape(path)}", highlight=False)
    for path, reason in report.failed:
        err.print(f"[red]失敗 (failed):[/red] {escape(path)}: {escape(reason)}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


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

    from sekisho.guard.roles import cli_principal
    from sekisho.retrieval import MODES, EmbedderError, highlight, open_knowledge_base
    from sekisho.store import StoreError

    if mode not in MODES:
        raise fail(f"--mode {mode!r}: choose one of {', '.join(MODES)}")
    try:
        with open_knowledge_base(settings_of(ctx)) as kb:
            empty = not kb.store.documents()
            hits = [] if empty else kb.search(query, k=k, tags=cli_principal().tags, mode=mode)  # type: ignore[arg-type]
    except (StoreError, EmbedderError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        print(json.dumps([
            {
                "rank": h.rank, "score": h.score, "title": h.document.title, "path": h.document.path,
                "doc_id": h.document.id, "chunk_id": h.chunk.id, "location": h.chunk.location.label(),
                "lexical_rank": h.lexical_rank, "dense_rank": h.dense_rank,
                "matched_terms": list(h.matched_terms), "snippet": highlight(h),
            }
            for h in hits
        ], ensure_ascii=False, indent=2))
        return
    if empty:
        console.print("文書がまだありません (the knowledge base is empty): `sekisho ingest PATH` で追加してください。")
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

def _model_call(settings: Settings, name: str | None):
    """The one place `ask` gets its model call: (backend, stream callable). Routing through the
    governance Gateway replaces this body, nothing else."""
    from sekisho.models import open_backend

    backend = open_backend(settings, name)
    return backend, backend.stream


@app.command("ask")
def ask_command(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="質問 (question)")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="使うモデル名 (backend name)")] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=50, help="参照する資料の数 (passages to retrieve)")] = 5,
    tag: Annotated[Optional[list[str]], typer.Option("--tag", help="この閲覧タグの文書だけ (access tags)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON で出力 (one object)")] = False,
) -> None:
    """知識ベースに質問し、出典付きで回答. Ask the knowledge base; answer with sources and support check."""
    import json
    import sys

    from rich.markup import escape

    from sekisho.answer import Answer, ask_stream
    from sekisho.models import BackendError
    from sekisho.retrieval import open_knowledge_base

    if not question.strip():
        raise fail("質問が空です (the question is empty)")
    settings = settings_of(ctx)
    try:
        backend, stream = _model_call(settings, model)
        kb = open_knowledge_base(settings)
    except (BackendError, OSError, ValueError) as exc:
        raise fail(str(exc)) from None
    answer: Answer | None = None
    try:
        pieces = ask_stream(question, kb=kb, stream=stream, model=backend.info().name,
                            count_tokens=backend.count_tokens, k=k, tags=tag or None)
        for item in pieces:
            if isinstance(item, Answer):
                answer = item
            elif not as_json:
                sys.stdout.write(item)
                sys.stdout.flush()
    except BackendError as exc:
        raise fail(str(exc)) from None
    finally:
        kb.close()
    assert answer is not None  # ask_stream always ends with the Answer
    report = answer.faithfulness
    if as_json:
        print(json.dumps(_answer_json(answer), ensure_ascii=False, indent=2))
        return
    print()
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

# --- server and keys (server/) ----------------------------------------------------------------


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    host: Annotated[Optional[str], typer.Option("--host", help="待ち受けアドレス (bind address; default 127.0.0.1)")] = None,
    port: Annotated[Optional[int], typer.Option("--port", min=1, max=65535, help="ポート (default 8765)")] = None,
) -> None:
    """API・OpenAI互換ゲートウェイ・Web画面を起動する. Serve the API, gateway and web UI."""
    from sekisho.server.app import serve

    settings = settings_of(ctx)
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
) -> None:
    """キーを発行し、一度だけ表示する. Create a key; the secret is printed once."""
    from sekisho.guard.roles import Role
    from sekisho.server.keys import KeyStoreError, open_key_store

    try:
        chosen = Role(role)
    except ValueError:
        raise fail(f"--role {role!r}: choose one of {', '.join(r.value for r in Role)}") from None
    store = open_key_store(settings_of(ctx))
    try:
        key, secret = store.create(chosen, name, tuple(tag or ()))
    except KeyStoreError as exc:
        raise fail(str(exc)) from None
    finally:
        store.close()
    err.print(f"キー {key.id} ({key.role.value}) を発行しました。この値は二度と表示されません。"
              f"/ Key {key.id} created; the secret below is shown only once.", highlight=False)
    print(secret)


@keys_app.command("list")
def keys_list(ctx: typer.Context) -> None:
    """発行済みのキー一覧 (秘密は表示しない). List keys (never their secrets)."""
    import datetime as dt

    from rich.table import Table

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

    table = Table("ID", "名前 name", "役割 role", "タグ tags", "発行 created", "最終利用 last used", "状態 state")
    for k in keys:
        state = "有効 active" if k.active else f"失効 revoked {when(k.revoked_at)}"
        table.add_row(k.id, k.name, k.role.value, ", ".join(k.tags), when(k.created_at), when(k.last_used_at), state)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(help="キーID (from `keys list`)")]) -> None:
    """キーを失効させる. Revoke a key."""
    from sekisho.server.keys import KeyStoreError, open_key_store

    store = open_key_store(settings_of(ctx))
    try:
        store.revoke(key_id)
    except KeyStoreError as exc:
        raise fail(str(exc)) from None
    finally:
        store.close()
    console.print(f"キー {key_id} を失効させました (revoked).", highlight=False)


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
    watts_per_core: Annotated[float, typer.Option("--watts-per-core", min=0.0, help="RAPL がないときの推定用 W/コア")] = 5.0,
) -> None:
    """スイートを実行してレポートを書く. Run a suite; writes OUT/report.html and OUT/report.json."""
    from sekisho.arena import ArenaError, load_suite, run_suite
    from sekisho.models import BackendError

    try:
        spec = load_suite(suite)
        names = [m.strip() for m in models.split(",") if m.strip()] if models else list(spec.models)
        summary = run_suite(settings_of(ctx), spec, names, out, limit=limit, data=data,
                            watts_per_core=watts_per_core, console=err)
    except (ArenaError, BackendError) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail(f"中断しました (interrupted): finished items are saved in {out}; run the same command to resume",
                   130) from None
    console.print(f"完了 (done): {summary.done} 問を実行、{summary.skipped} 問は前回分を再利用 (resumed) · "
                  f"suite hash {summary.suite_hash}", highlight=False)
    for line in summary.errors[:10]:
        err.print(f"[yellow]error:[/yellow] {line}", highlight=False)
    console.print(f"レポート (report): {summary.report_html}  {summary.report_json}", highlight=False)
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
            err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
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
    from sekisho.arena import ArenaError, rebuild_report

    try:
        html, js = rebuild_report(run_dir)
    except ArenaError as exc:
        raise fail(str(exc)) from None
    console.print(f"レポート (report): {html}  {js}", highlight=False)

"""Knowledge base commands: ingest, search, reembed, documents (ingest/, retrieval/, store/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from sekisho.cli.base import app, audit_log, console, err, fail, settings_of
from sekisho.config import Settings


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
    log = audit_log(ctx)
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

@app.command("reembed")
def reembed_command(
    ctx: typer.Context,
    status: Annotated[bool, typer.Option("--status", help="進み具合だけを表示 (print how far it is, change nothing)")] = False,
) -> None:
    """設定した埋め込みモデルで知識ベースを埋め込み直す (検索は続く). Re-embed the store with the configured
    embedder; safe to interrupt and run again (it resumes)."""
    from sekisho.retrieval import open_knowledge_base
    from sekisho.retrieval.reembed import progress, reembed

    settings = settings_of(ctx)
    with open_knowledge_base(settings) as kb:
        if status:
            console.print(progress(kb).line(), highlight=False, soft_wrap=True)
            return
        try:
            with err.status(progress(kb).line()) as line:
                reembed(kb, report=lambda done: line.update(done.line()))
        except KeyboardInterrupt:
            err.print(f"中断 (interrupted): {progress(kb).line()}; `sekisho reembed` で続きから (run it again to "
                      "resume)", highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None
        console.print(progress(kb).line(), highlight=False, soft_wrap=True)


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

"""Operations: check, config check, migrate (check.py, server/preflight.py, store/migrate.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from sekisho.cli.base import app, console, err, fail, settings_of
from sekisho.config import load_settings


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

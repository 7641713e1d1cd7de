"""`sekisho app`: run the task apps from the command line (apps/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from sekisho.cli.base import app, console, err, fail, settings_of

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

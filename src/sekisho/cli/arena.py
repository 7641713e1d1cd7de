"""`sekisho arena`: compare models on Japanese task suites (arena/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from sekisho.cli.base import app, console, err, fail, settings_of

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

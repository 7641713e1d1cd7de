"""What every command shares: the Typer app, its one error boundary, the console and the settings."""

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


def audit_log(ctx: typer.Context):
    """The audit log the configuration names (a file, or the store's PostgreSQL database)."""
    from sekisho.audit import AuditLog

    return AuditLog.from_settings(settings_of(ctx))


def print_json(value) -> None:
    import json

    print(json.dumps(value, ensure_ascii=False, indent=2))

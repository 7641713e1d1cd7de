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

# --- models and answers: models, ask (models/, answer/) ---------------------------------------

# --- governance: guard, audit, provenance, review (guard/, audit/) ---------------------------

# --- server and keys (server/) ----------------------------------------------------------------

# --- arena (arena/) ---------------------------------------------------------------------------

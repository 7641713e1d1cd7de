"""The server and who may use it: serve, keys, quota (server/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sekisho.cli.base import app, console, err, fail, print_json, settings_of
from sekisho.config import load_settings


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
        print_json([{"principal": u.principal, "role": u.role, "key_id": u.key_id,
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

"""Per-request plumbing shared by the API, the OpenAI gateway and the web UI: the app's state and
the authentication dependency that turns a key or a session cookie into a Principal."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request

from sekisho.config import Settings
from sekisho.identity import Principal
from sekisho.server.errors import ApiError
from sekisho.server.keys import ApiKey, SQLiteKeyStore
from sekisho.server.runtime import Runtime
from sekisho.server.security import (
    SESSION_COOKIE,
    Caller,
    Permission,
    RateLimiter,
    Sessions,
    bearer,
    effective_tags,
    may,
)

log = logging.getLogger("sekisho.server")


@dataclass
class AppState:
    settings: Settings
    runtime: Runtime
    keys: SQLiteKeyStore
    sessions: Sessions
    limiter: RateLimiter


def state_of(request: Request) -> AppState:
    return request.app.state.sekisho


def principal_of(key: ApiKey) -> Principal:
    return Principal(name=f"key:{key.id}:{key.name}", role=key.role, tags=effective_tags(key))


async def audit_event(state: AppState, kind: str, record: dict[str, Any]) -> int | None:
    """Append to the audit log off the event loop; returns the sequence number."""

    def _append() -> int | None:
        return getattr(state.runtime.audit().append(kind, record), "seq", None)

    return await state.runtime.run(_append)


async def _deny(state: AppState, request: Request, status: int, reason: str, who: str | None,
                **headers: str) -> Exception:
    record = {"status": status, "reason": reason, "principal": who, "method": request.method,
              "path": request.url.path, "client": request.client.host if request.client else None}
    try:
        await audit_event(state, "access.denied", record)
    except Exception:  # noqa: BLE001 - the denial stands even if recording it failed; the log says so
        log.exception("could not audit a denial: %s", record)
    code = {401: "invalid_api_key", 403: "forbidden", 429: "rate_limit_exceeded"}[status]
    return ApiError(status, reason, code=code, headers=headers or None)


async def authenticate(request: Request, permission: Permission | None) -> Caller:
    """The caller behind the key or session; 401/429/403 (each audited) when refused. With
    permission None only identity is checked (pages that route each role to its own start)."""
    state = state_of(request)
    token = bearer(request)
    key: ApiKey | None = None
    via_session = False
    if token is not None:
        key = state.keys.authenticate(token)
        if key is None:
            raise await _deny(state, request, 401, "invalid or revoked API key (APIキーが無効です)", None,
                              **{"WWW-Authenticate": "Bearer"})
    else:
        sid = request.cookies.get(SESSION_COOKIE)
        key_id = state.sessions.key_id(sid) if sid else None
        key = state.keys.get(key_id) if key_id else None
        if key is None or not key.active:
            raise await _deny(state, request, 401,
                              "missing API key: send 'Authorization: Bearer <key>' (APIキーが必要です)", None,
                              **{"WWW-Authenticate": "Bearer"})
        via_session = True
    principal = principal_of(key)
    state.keys.touch(key.id)
    wait = state.limiter.take(key.id)
    if wait > 0:
        raise await _deny(state, request, 429, f"リクエストが多すぎます / rate limit exceeded for key {key.id}; retry in {wait:.1f} s",
                          principal.name, **{"Retry-After": str(max(1, round(wait)))})
    if permission is not None and not may(principal, permission):
        raise await _deny(state, request, 403,
                          f"role '{principal.role.value}' may not use '{permission.value}' (権限がありません)",
                          principal.name)
    return Caller(key=key, principal=principal, via_session=via_session)


def require(permission: Permission) -> Any:
    async def dependency(request: Request) -> Caller:
        return await authenticate(request, permission)

    dependency.__name__ = f"require_{permission.value}"
    return Depends(dependency)

"""Per-request plumbing shared by the API, the OpenAI gateway and the web UI: the app's state and
the authentication dependency that turns a key or a session cookie into a Principal."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request

from sekisho.config import Settings
from sekisho.identity import Principal
from sekisho.server.errors import ApiError
from sekisho.server.keys import ApiKey, KeyStore
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
    keys: KeyStore
    sessions: Sessions
    limiter: RateLimiter
    anonymous_limiter: RateLimiter
    failed: FailedAuthentications


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
              "path": request.url.path, "client": _client(request)}
    try:
        await audit_event(state, "access.denied", record)
    except Exception:  # noqa: BLE001 - the denial stands even if recording it failed; the log says so
        log.exception("could not audit a denial: %s", record)
    return _refusal(status, reason, headers)


def _refusal(status: int, reason: str, headers: dict[str, str]) -> ApiError:
    code = {401: "invalid_api_key", 403: "forbidden", 429: "rate_limit_exceeded"}[status]
    return ApiError(status, reason, code=code, headers=headers or None)


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


@dataclass(frozen=True)
class _Identified:
    key: ApiKey | None
    via_session: bool
    wait: float  # seconds until this key (or, without one, this address) may call again; 0: now


def _identify(state: AppState, token: str | None, sid: str | None, client: str | None) -> _Identified:
    """Off the event loop (every step reads or writes the access database): the key behind the
    bearer token or the session cookie, and the rate limit's verdict for it."""
    if token is not None:
        key, via_session = state.keys.authenticate(token), False
    else:
        key_id = state.sessions.key_id(sid) if sid else None
        key, via_session = (state.keys.get(key_id) if key_id else None), True
        if key is not None and not key.active:
            key = None
    if key is None:
        # Callers without a valid key are limited per address, so guessing keys (or flooding the
        # log with refusals) is as slow for them as it is for anyone.
        return _Identified(None, via_session, state.anonymous_limiter.take(f"address:{client}"))
    state.keys.touch(key.id)
    return _Identified(key, via_session, state.limiter.take(f"key:{key.id}"))


async def authenticate(request: Request, permission: Permission | None) -> Caller:
    """The caller behind the key or session; 401/429/403 when refused. 403 and a key's 429 are
    audited one by one; failed authentications are counted per address and audited as one record
    per minute (FailedAuthentications), so refusals cannot flood the log. With permission None
    only identity is checked (pages that route each role to its own start)."""
    state = state_of(request)
    token, client = bearer(request), _client(request)
    found = await state.runtime.run(_identify, state, token, request.cookies.get(SESSION_COOKIE), client)
    if found.key is None:
        if found.wait > 0:
            raise _refusal(429, f"リクエストが多すぎます / too many requests from {client}; retry in {found.wait:.1f} s",
                           {"Retry-After": str(max(1, round(found.wait)))})
        reason = ("invalid or revoked API key (APIキーが無効です)" if token is not None else
                  "missing API key: send 'Authorization: Bearer <key>' (APIキーが必要です)")
        state.failed.note(client, request.method, request.url.path, reason)
        raise _refusal(401, reason, {"WWW-Authenticate": "Bearer"})
    key = found.key
    principal = principal_of(key)
    if found.wait > 0:
        raise await _deny(state, request, 429, f"リクエストが多すぎます / rate limit exceeded for key {key.id}; retry in "
                          f"{found.wait:.1f} s", principal.name, **{"Retry-After": str(max(1, round(found.wait)))})
    if permission is not None and not may(principal, permission):
        raise await _deny(state, request, 403,
                          f"role '{principal.role.value}' may not use '{permission.value}' (権限がありません)",
                          principal.name)
    return Caller(key=key, principal=principal, via_session=found.via_session)


class FailedAuthentications:
    """Failed authentications counted per (address, reason) and written to the audit log as one
    `access.denied` record per minute and address with the count, first and last time and the
    paths tried. A flood of bad keys costs the log a record a minute, not one per request."""

    WINDOW_S = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[str | None, str], dict[str, Any]] = {}

    def note(self, client: str | None, method: str, path: str, reason: str) -> None:
        now = time.time()
        with self._lock:
            entry = self._open.setdefault((client, reason), {
                "status": 401, "reason": reason, "principal": None, "client": client, "count": 0,
                "first": now, "last": now, "paths": []})
            entry["count"] += 1
            entry["last"] = now
            where = f"{method} {path}"
            if where not in entry["paths"] and len(entry["paths"]) < 20:
                entry["paths"].append(where)

    def due(self, *, everything: bool = False) -> list[dict[str, Any]]:
        """The counts whose minute is over (all of them at shutdown), removed from memory."""
        now = time.time()
        with self._lock:
            ready = [k for k, v in self._open.items() if everything or now - v["first"] >= self.WINDOW_S]
            return [self._open.pop(k) for k in ready]

    async def flush(self, state: AppState, *, everything: bool = False) -> None:
        for record in self.due(everything=everything):
            record["first"] = round(record["first"], 3)
            record["last"] = round(record["last"], 3)
            try:
                await audit_event(state, "access.denied", record)
            except Exception:  # noqa: BLE001 - the server log keeps what the audit log could not
                log.exception("could not audit failed authentications: %s", record)


def require(permission: Permission | None) -> Any:
    """The caller with `permission`; with None, any valid key (identity only)."""

    async def dependency(request: Request) -> Caller:
        return await authenticate(request, permission)

    dependency.__name__ = f"require_{permission.value if permission else 'identity'}"
    return Depends(dependency)

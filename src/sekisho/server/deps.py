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
from sekisho.server.oidc import OidcSignIn
from sekisho.server.runtime import Runtime
from sekisho.server.security import (
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    Caller,
    Permission,
    RateLimiter,
    Sessions,
    bearer,
    csrf_matches,
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
    oidc: OidcSignIn | None = None  # sign-in with the organisation's IdP, when [auth.oidc] is configured


def state_of(request: Request) -> AppState:
    return request.app.state.sekisho


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
    principal: Principal | None  # None: nobody valid is behind the request
    via_session: bool
    display: str
    wait: float  # seconds until this caller (or, without one, this address) may call again; 0: now


def _identify(state: AppState, token: str | None, sid: str | None, client: str | None) -> _Identified:
    """Off the event loop (every step reads or writes the access database): the key or signed-in
    person behind the bearer token or the session cookie, and the rate limit's verdict for them."""
    key, principal, display = None, None, ""
    if token is not None:
        key = state.keys.authenticate(token)
    elif sid:
        session = state.sessions.get(sid)
        if session is not None and session.key_id is not None:
            key = state.keys.get(session.key_id)
            key = key if key is not None and key.active else None
        elif session is not None:
            principal, display = session.principal, session.display
    if key is not None:
        state.keys.touch(key.id)
        principal, bucket = key.principal(), f"key:{key.id}"
    elif principal is not None:
        bucket = f"person:{principal.name}"
    else:
        # Callers without a valid key are limited per address, so guessing keys (or flooding the
        # log with refusals) is as slow for them as it is for anyone.
        return _Identified(None, None, token is None, "", state.anonymous_limiter.take(f"address:{client}"))
    return _Identified(key, principal, token is None, display, state.limiter.take(bucket))


async def authenticate(request: Request, permission: Permission | None) -> Caller:
    """The caller behind the key or session; 401/429/403 when refused. 403 and a caller's 429 are
    audited one by one; failed authentications are counted per address and audited as one record
    per minute (FailedAuthentications), so refusals cannot flood the log. A state-changing request
    riding on the session cookie must carry the session's CSRF token (a bearer key needs none: no
    other site can make a browser send it). With permission None only identity is checked (pages
    that route each role to its own start)."""
    state = state_of(request)
    token, client, sid = bearer(request), _client(request), request.cookies.get(SESSION_COOKIE)
    found = await state.runtime.run(_identify, state, token, sid, client)
    if found.principal is None:
        if found.wait > 0:
            raise _refusal(429, f"リクエストが多すぎます / too many requests from {client}; retry in {found.wait:.1f} s",
                           {"Retry-After": str(max(1, round(found.wait)))})
        if token is not None:
            reason = "invalid or revoked API key (APIキーが無効です)"
        elif sid:
            reason = "session expired or ended: sign in again (セッションが終了しました)"
        else:
            reason = "missing API key: send 'Authorization: Bearer <key>' (APIキーが必要です)"
        state.failed.note(client, request.method, request.url.path, reason)
        raise _refusal(401, reason, {"WWW-Authenticate": "Bearer"})
    principal = found.principal
    if found.wait > 0:
        raise await _deny(state, request, 429, f"リクエストが多すぎます / rate limit exceeded for {principal.name}; retry "
                          f"in {found.wait:.1f} s", principal.name, **{"Retry-After": str(max(1, round(found.wait)))})
    if found.via_session and request.method not in SAFE_METHODS and not csrf_matches(sid or "", request.headers.get(
            CSRF_HEADER)):
        raise await _deny(state, request, 403, f"CSRF token missing or wrong: send the page's token in {CSRF_HEADER} "
                          "(ページを読み込み直してください)", principal.name)
    if permission is not None and not may(principal, permission):
        raise await _deny(state, request, 403,
                          f"role '{principal.role.value}' may not use '{permission.value}' (権限がありません)",
                          principal.name)
    return Caller(principal=principal, key=found.key, via_session=found.via_session, display=found.display)


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

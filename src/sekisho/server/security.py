"""Who may do what: key and session authentication, least-privilege role checks, per-key rate
limits, request size limits. Every denial is answered with a clear 401/403/413/429 and recorded in
the audit log, so probing shows up in the same record as use."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

from fastapi import Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sekisho.db import Database
from sekisho.identity import Principal, Role
from sekisho.server.errors import error_json
from sekisho.server.keys import ApiKey


class Permission(StrEnum):
    CHAT = "chat"  # /v1 chat, models; native ask
    SEARCH = "search"  # native search, embeddings, reading passages, listing visible documents
    REVIEW = "review"  # review queue
    AUDIT = "audit"  # audit query, verify, export; provenance export
    DOCUMENTS = "documents"  # upload, delete
    KEYS = "keys"  # manage keys


# Least privilege: an auditor reads the record and nothing else; a reviewer decides held answers
# and may ask (to check context) but not browse the corpus; a user asks and searches.
GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.REVIEWER: frozenset({Permission.REVIEW, Permission.CHAT}),
    Role.USER: frozenset({Permission.CHAT, Permission.SEARCH}),
    Role.AUDITOR: frozenset({Permission.AUDIT}),
}

SESSION_COOKIE = "sekisho_session"
SESSION_TTL_S = 8 * 3600
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"  # the same token in a plain HTML form (the sign-out button)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def may(principal: Principal, permission: Permission) -> bool:
    return permission in GRANTS[principal.role]


def can_see(principal: Principal, doc_tags: tuple[str, ...]) -> bool:
    if "*" in principal.tags or not doc_tags:
        return True
    return bool(set(doc_tags) & set(principal.tags))


def search_tags(principal: Principal) -> list[str] | None:
    """The tag filter for retrieval: None = everything (admins), otherwise the principal's tags
    (retrieval always includes untagged documents)."""
    return None if "*" in principal.tags else list(principal.tags)


def csrf_token(sid: str) -> str:
    """The CSRF token of a session: an HMAC keyed by the session id. Another site's page can
    neither read the HttpOnly cookie nor this site's pages, so it cannot present the token; the
    server keeps nothing for it, and the stored hash of the id does not give it away."""
    return hmac.new(sid.encode("utf-8"), b"sekisho csrf", hashlib.sha256).hexdigest()


def csrf_matches(sid: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(sid), presented or "")


@dataclass
class Caller:
    principal: Principal
    key: ApiKey | None  # None: a person signed in through the organisation's IdP
    via_session: bool
    display: str = ""  # the person's name as the IdP gives it (sessions opened by sign-in)


@dataclass(frozen=True)
class Session:
    key_id: str | None  # opened with an API key: the key is checked again on every request
    principal: Principal | None  # opened by the IdP: who, with role and tags as mapped at sign-in
    display: str


class Sessions:
    """Browser sessions: a random id in an HttpOnly cookie mapping to a key id (so the key itself
    never sits in the browser) or to the principal the IdP signed in. In the access database,
    hashed: every worker process knows every session, and a restart logs nobody out."""

    def __init__(self, db: Database, ttl_s: float = SESSION_TTL_S) -> None:
        self.db = db
        self.ttl_s = ttl_s

    def open(self, key_id: str | None = None, *, principal: Principal | None = None, display: str = "") -> str:
        if (key_id is None) == (principal is None):
            raise ValueError("a session is opened for a key or for a principal, not both or neither")
        sid = secrets.token_urlsafe(32)
        now = time.time()
        person = (principal.name, principal.role.value, "\t".join(principal.tags)) if principal else (None,) * 3
        with self.db.write() as conn:
            # Expired sessions go when new ones come, so the table stays as large as the live ones.
            conn.execute("DELETE FROM sessions WHERE expires < ?", (now,))
            conn.execute("INSERT INTO sessions (id, key_id, principal, role, tags, display, expires) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", (_session_digest(sid), key_id, *person, display, now + self.ttl_s))
        return sid

    def get(self, sid: str) -> Session | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT key_id, principal, role, tags, display, expires FROM sessions WHERE id = ?",
                               (_session_digest(sid),)).fetchone()
        if row is None or row[5] < time.time():
            return None
        key_id, name, role, tags, display = row[:5]
        principal = None if name is None else Principal(name, Role(role), tuple(t for t in tags.split("\t") if t))
        return Session(key_id=key_id, principal=principal, display=display)

    def close(self, sid: str) -> Session | None:
        """End the session; returns what it was (None: there was none, or it had expired)."""
        session = self.get(sid)
        with self.db.write() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (_session_digest(sid),))
        return session


def _session_digest(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


class RateLimiter:
    """A token bucket per key (or per address for callers without one): `per_minute` requests of
    burst, refilled evenly over a minute. In the access database, so the limit holds across worker
    processes and restarts."""

    def __init__(self, db: Database, per_minute: int):
        self.db = db
        self.capacity = float(max(per_minute, 1))
        self.rate = self.capacity / 60.0

    def take(self, bucket: str) -> float:
        """0.0 when allowed, else the seconds until the next token."""
        now = time.time()
        # The row is read locked, so two servers taking from one bucket at once take two tokens:
        # SQLite's write transaction already excludes every other writer; PostgreSQL locks the row
        # (made first if new, so there is a row to lock).
        lock = " FOR UPDATE" if self.db.dialect == "postgresql" else ""
        with self.db.write() as conn:
            conn.execute("INSERT INTO rate_buckets (bucket, tokens, updated) VALUES (?, ?, ?) "
                         "ON CONFLICT (bucket) DO NOTHING", (bucket, self.capacity, now))
            tokens, last = conn.execute(f"SELECT tokens, updated FROM rate_buckets WHERE bucket = ?{lock}",
                                        (bucket,)).fetchone()
            tokens = min(self.capacity, tokens + max(0.0, now - last) * self.rate)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
            if not wait:
                tokens -= 1.0
            conn.execute("UPDATE rate_buckets SET tokens = ?, updated = ? WHERE bucket = ?", (tokens, now, bucket))
        return wait


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


class BodyLimit:
    """Pure ASGI middleware refusing bodies over a limit with 413, whether or not the client sent a
    Content-Length (chunked bodies are counted as they arrive)."""

    def __init__(self, app: ASGIApp, *, default_bytes: int, upload_bytes: int, upload_paths: tuple[str, ...]):
        self.app = app
        self.default_bytes = default_bytes
        self.upload_bytes = upload_bytes
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = self.upload_bytes if path.startswith(self.upload_paths) else self.default_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(scope, receive, send, limit)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = error_json(413, f"リクエストが大きすぎます / request body larger than the limit of {limit} bytes", code="too_large")
        await response(scope, receive, send)


class _TooLarge(StarletteHTTPException):
    # An HTTPException so that FastAPI's body parsing passes it through as a 413 instead of
    # turning it into "error parsing the body".
    def __init__(self, limit: int):
        super().__init__(413, f"リクエストが大きすぎます / request body larger than the limit of {limit} bytes")

"""API keys: random secrets shown once, stored only as hashes, each bound to a role and access tags.

Keys live in the access database (beside the audit log, or in PostgreSQL) with the browser
sessions, rate-limit buckets and quota counters, so every worker process and every server sees one
truth. A key may carry its own quota limits, set when it is created (server/quotas.py).

Why sha256 and not scrypt: keys are 32 random bytes (256 bits of entropy), so brute force against
the hash is infeasible whatever the hash speed; slow password hashes only help low-entropy human
passwords, and scrypt would cost ~50 ms of CPU on every request. The 8-character prefix is stored
in clear for lookup and for humans to tell keys apart ("sk-skh-ab12cd34…").
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sekisho.config import QuotaLimits, Settings, resolve_path
from sekisho.db import Database, Migrations, copy_table, open_database
from sekisho.errors import Conflict, InvalidInput, NotFound
from sekisho.identity import Principal, Role, effective_tags

KEY_PREFIX = "sk-skh-"


class KeyStoreError(InvalidInput):
    """A key operation failed; the message is one line naming the key and the reason."""


class KeyNotFound(NotFound, KeyStoreError):
    """No key has this id."""


class KeyRevoked(Conflict, KeyStoreError):
    """The key was already revoked."""


@dataclass(frozen=True)
class ApiKey:
    id: str  # the public lookup prefix, also the id users pass to `keys revoke`
    name: str
    role: Role
    tags: tuple[str, ...]
    created_at: float
    revoked_at: float | None = None
    last_used_at: float | None = None
    limits: QuotaLimits = QuotaLimits()  # the key's own quota limits; unset: only role and user limits

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def principal(self) -> Principal:
        """Who a request with this key acts as: named by the key, with the access its role gives."""
        return Principal(name=f"key:{self.id}:{self.name}", role=self.role, tags=effective_tags(self.role, self.tags))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _split(secret: str) -> str | None:
    """The lookup id inside a well-formed secret, or None."""
    if not secret.startswith(KEY_PREFIX):
        return None
    body = secret[len(KEY_PREFIX):]
    key_id, sep, rest = body.partition("_")
    if not sep or len(key_id) != 8 or not rest:
        return None
    return key_id


ACCESS_MIGRATIONS = Migrations("access")
# IF NOT EXISTS: key databases from before named migrations already have this table.
ACCESS_MIGRATIONS.sql("api_keys", """
    CREATE TABLE IF NOT EXISTS api_keys (
        id TEXT PRIMARY KEY, hash TEXT NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL,
        tags TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION,
        last_used_at DOUBLE PRECISION)
""")
# Browser sessions, shared by every worker process; the id is stored hashed, so the table never
# holds a live cookie value. (DOUBLE PRECISION, not REAL: PostgreSQL's REAL is 4 bytes, which
# rounds a Unix time to minutes; SQLite reads either as an 8-byte float.)
ACCESS_MIGRATIONS.sql("sessions", """
    CREATE TABLE sessions (id TEXT PRIMARY KEY, key_id TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL);
    CREATE INDEX sessions_by_expiry ON sessions(expires)
""")
# Token buckets of the per-key rate limit (and of unauthenticated callers, per address).
ACCESS_MIGRATIONS.sql("rate_buckets", """
    CREATE TABLE rate_buckets (bucket TEXT PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL,
                               updated DOUBLE PRECISION NOT NULL)
""")
# Sessions of people signed in through the organisation's IdP carry who they are (as mapped at
# sign-in) instead of a key. Sessions last hours, so the table is made anew rather than altered:
# upgrading asks everyone signed in to sign in once more.
ACCESS_MIGRATIONS.sql("sessions_for_people", """
    DROP TABLE sessions;
    CREATE TABLE sessions (id TEXT PRIMARY KEY, key_id TEXT, principal TEXT, role TEXT, tags TEXT,
                           display TEXT NOT NULL DEFAULT '', expires DOUBLE PRECISION NOT NULL);
    CREATE INDEX sessions_by_expiry ON sessions(expires)
""")
# Sign-ins under way at the IdP (server/oidc.py): state, nonce and PKCE verifier, found again by
# the hash of a cookie only the browser that started the sign-in holds; used once, then deleted.
ACCESS_MIGRATIONS.sql("oidc_signins", """
    CREATE TABLE oidc_signins (id TEXT PRIMARY KEY, state TEXT NOT NULL, nonce TEXT NOT NULL,
                               verifier TEXT NOT NULL, redirect_uri TEXT NOT NULL,
                               expires DOUBLE PRECISION NOT NULL);
    CREATE INDEX oidc_signins_by_expiry ON oidc_signins(expires)
""")
# A key's own quota limits (NULL: none of its own).
ACCESS_MIGRATIONS.sql("key_quotas", """
    ALTER TABLE api_keys ADD COLUMN requests_per_minute INTEGER;
    ALTER TABLE api_keys ADD COLUMN tokens_per_day INTEGER;
    ALTER TABLE api_keys ADD COLUMN tokens_per_month INTEGER
""")
# Quota counters (server/quotas.py): requests and tokens per principal and calendar window
# ("minute:2026-12-07T01:42" in UTC, "day:2026-12-07" and "month:2026-12" in the organisation's
# time zone), and each principal's role and key as last seen, for the admins' view. A window's end
# is whole epoch seconds in a BIGINT: a 4-byte float (PostgreSQL's REAL) would round it by a minute.
ACCESS_MIGRATIONS.sql("quota_usage", """
    CREATE TABLE quota_principals (
        principal TEXT PRIMARY KEY, role TEXT NOT NULL, key_id TEXT, seen DOUBLE PRECISION NOT NULL);
    CREATE TABLE quota_usage (
        principal TEXT NOT NULL, period TEXT NOT NULL, ends BIGINT NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0, tokens INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (principal, period));
    CREATE INDEX quota_usage_by_end ON quota_usage(ends)
""")

_KEY_COLUMNS = ("id, hash, name, role, tags, created_at, revoked_at, last_used_at, "
                "requests_per_minute, tokens_per_day, tokens_per_month")


class KeyStore:
    """API keys in the access database (a SQLite file beside the audit log, or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        ACCESS_MIGRATIONS.apply(db)
        self._touched: dict[str, float] = {}
        self._touch_lock = threading.Lock()

    def create(self, role: Role, name: str = "", tags: tuple[str, ...] = (),
               limits: QuotaLimits | None = None) -> tuple[ApiKey, str]:
        """Make a key; returns its record and the secret, which is never retrievable again."""
        role = Role(role)
        limits = limits or QuotaLimits()
        clean_tags = tuple(sorted({t.strip() for t in tags if t.strip()}))
        if any("\t" in t or "\n" in t for t in clean_tags):
            raise KeyStoreError("tag: tabs and newlines are not allowed in tags")
        while True:
            key_id = secrets.token_hex(4)
            secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
            record = ApiKey(id=key_id, name=name or key_id, role=role, tags=clean_tags, created_at=time.time(),
                            limits=limits)
            with self.db.write() as conn:
                # 1 in 4 billion: the random id is taken; draw again.
                if conn.execute("SELECT 1 FROM api_keys WHERE id = ?", (key_id,)).fetchone():
                    continue
                conn.execute("INSERT INTO api_keys (id, hash, name, role, tags, created_at, requests_per_minute, "
                             "tokens_per_day, tokens_per_month) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (key_id, _digest(secret), record.name, role.value, "\t".join(clean_tags),
                              record.created_at, limits.requests_per_minute, limits.tokens_per_day,
                              limits.tokens_per_month))
            return record, secret

    def authenticate(self, secret: str) -> ApiKey | None:
        """The active key this secret belongs to, or None. Read from the database every time, so
        a key revoked by any worker (or the CLI) is refused by every worker at once."""
        key_id = _split(secret)
        if key_id is None:
            return None
        with self.db.read() as conn:
            row = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        if row is None or not hmac.compare_digest(row[1], _digest(secret)):
            return None
        key = _record(row)
        return key if key.active else None

    def touch(self, key_id: str) -> None:
        """Record use, at most once a minute per key and process: a write per request would
        serialise the server on the key database for a timestamp nobody needs to the second."""
        now = time.time()
        with self._touch_lock:
            if now - self._touched.get(key_id, 0.0) < 60.0:
                return
            self._touched[key_id] = now
        with self.db.write() as conn:
            conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now, key_id))

    def list(self) -> list[ApiKey]:
        with self.db.read() as conn:
            rows = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at").fetchall()
        return [_record(r) for r in rows]

    def get(self, key_id: str) -> ApiKey | None:
        with self.db.read() as conn:
            row = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        return _record(row) if row else None

    def revoke(self, key_id: str) -> ApiKey:
        with self.db.write() as conn:
            changed = conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                                   (time.time(), key_id)).rowcount
            # Sessions opened with the key end with it.
            conn.execute("DELETE FROM sessions WHERE key_id = ?", (key_id,))
        key = self.get(key_id)
        if key is None:
            raise KeyNotFound(f"key {key_id}: no such key")
        if not changed:
            raise KeyRevoked(f"key {key_id}: already revoked")
        return key

    def copy_from(self, source: KeyStore) -> int:
        """Every key of `source` (hashes, roles, tags, revocations); returns how many. Sessions and
        rate buckets stay behind: they are minutes long."""
        return copy_table(source.db, self.db, "api_keys", _KEY_COLUMNS.split(", "), ["id"], update=True)

    def close(self) -> None:
        self.db.close()


def _record(row: tuple) -> ApiKey:
    return ApiKey(
        id=row[0],
        name=row[2],
        role=Role(row[3]),
        tags=tuple(t for t in row[4].split("\t") if t),
        created_at=row[5],
        revoked_at=row[6],
        last_used_at=row[7],
        limits=QuotaLimits(requests_per_minute=row[8], tokens_per_day=row[9], tokens_per_month=row[10]),
    )


def keys_path(settings: Settings) -> Path:
    """The key database sits beside the audit database ('sekisho-audit.db' -> 'sekisho-audit.keys.db'),
    so a deployment backs up its identities together with the record of what they did."""
    return keys_beside(resolve_path(settings, settings.audit.path))


def keys_beside(audit: Path) -> Path:
    return audit.with_name(audit.stem + ".keys.db")


def open_access_database(settings: Settings) -> Database:
    """The store's PostgreSQL database when `[store] url` names one (every server sees every key,
    session and bucket), else the file beside the audit log."""
    return open_database(settings.store.url or keys_path(settings))


def open_key_store(settings: Settings) -> KeyStore:
    return KeyStore(open_access_database(settings))

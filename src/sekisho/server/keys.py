"""API keys: random secrets shown once, stored only as hashes, each bound to a role and access tags.

The store is a small protocol (`KeyStore`) with a SQLite implementation in its own file, so that a
PostgreSQL version can follow for several servers sharing one database.

Why sha256 and not scrypt: keys are 32 random bytes (256 bits of entropy), so brute force against
the hash is infeasible whatever the hash speed; slow password hashes only help low-entropy human
passwords, and scrypt would cost ~50 ms of CPU on every request. The 8-character prefix is stored
in clear for lookup and for humans to tell keys apart ("sk-skh-ab12cd34…").
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sekisho.config import Settings, resolve_path
from sekisho.errors import Conflict, InvalidInput, NotFound
from sekisho.identity import Principal, Role

KEY_PREFIX = "sk-skh-"
_SCHEMA_VERSION = 1


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

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def principal(self) -> Principal:
        return Principal(name=f"key:{self.id}:{self.name}", role=self.role, tags=self.tags)


class KeyStore(Protocol):
    def create(self, role: Role, name: str = "", tags: tuple[str, ...] = ()) -> tuple[ApiKey, str]:
        """Make a key; returns its record and the secret, which is never retrievable again."""

    def authenticate(self, secret: str) -> ApiKey | None:
        """The active key this secret belongs to, or None."""

    def list(self) -> list[ApiKey]: ...

    def revoke(self, key_id: str) -> ApiKey: ...

    def close(self) -> None: ...


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


class SQLiteKeyStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the server's threads; the lock keeps statements whole.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._touched: dict[str, float] = {}
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS api_keys ("
                " id TEXT PRIMARY KEY, hash TEXT NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL,"
                " tags TEXT NOT NULL, created_at REAL NOT NULL, revoked_at REAL, last_used_at REAL)"
            )
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def create(self, role: Role, name: str = "", tags: tuple[str, ...] = ()) -> tuple[ApiKey, str]:
        role = Role(role)
        clean_tags = tuple(sorted({t.strip() for t in tags if t.strip()}))
        if any("\t" in t or "\n" in t for t in clean_tags):
            raise KeyStoreError("tag: tabs and newlines are not allowed in tags")
        with self._lock:
            while True:
                key_id = secrets.token_hex(4)
                secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
                record = ApiKey(id=key_id, name=name or key_id, role=role, tags=clean_tags, created_at=time.time())
                try:
                    self._db.execute(
                        "INSERT INTO api_keys (id, hash, name, role, tags, created_at) VALUES (?,?,?,?,?,?)",
                        (key_id, _digest(secret), record.name, role.value, "\t".join(clean_tags), record.created_at),
                    )
                except sqlite3.IntegrityError:  # 1 in 4 billion: the random id is taken; draw again
                    continue
                return record, secret

    def authenticate(self, secret: str) -> ApiKey | None:
        key_id = _split(secret)
        if key_id is None:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT id, hash, name, role, tags, created_at, revoked_at, last_used_at FROM api_keys WHERE id=?",
                (key_id,),
            ).fetchone()
        if row is None or not hmac.compare_digest(row[1], _digest(secret)):
            return None
        key = _record(row)
        return key if key.active else None

    def touch(self, key_id: str) -> None:
        """Record use, at most once a minute per key: a write per request would serialise the server
        on the key database for a timestamp nobody needs to the second."""
        now = time.time()
        with self._lock:
            if now - self._touched.get(key_id, 0.0) < 60.0:
                return
            self._touched[key_id] = now
            self._db.execute("UPDATE api_keys SET last_used_at=? WHERE id=?", (now, key_id))

    def list(self) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, hash, name, role, tags, created_at, revoked_at, last_used_at FROM api_keys"
                " ORDER BY created_at"
            ).fetchall()
        return [_record(r) for r in rows]

    def get(self, key_id: str) -> ApiKey | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, hash, name, role, tags, created_at, revoked_at, last_used_at FROM api_keys WHERE id=?",
                (key_id,),
            ).fetchone()
        return _record(row) if row else None

    def revoke(self, key_id: str) -> ApiKey:
        with self._lock:
            cur = self._db.execute(
                "UPDATE api_keys SET revoked_at=? WHERE id=? AND revoked_at IS NULL", (time.time(), key_id)
            )
            changed = cur.rowcount
        key = self.get(key_id)
        if key is None:
            raise KeyNotFound(f"key {key_id}: no such key")
        if not changed:
            raise KeyRevoked(f"key {key_id}: already revoked")
        return key

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _record(row: tuple) -> ApiKey:
    return ApiKey(
        id=row[0],
        name=row[2],
        role=Role(row[3]),
        tags=tuple(t for t in row[4].split("\t") if t),
        created_at=row[5],
        revoked_at=row[6],
        last_used_at=row[7],
    )


def keys_path(settings: Settings) -> Path:
    """The key database sits beside the audit database ('sekisho-audit.db' -> 'sekisho-audit.keys.db'),
    so a deployment backs up its identities together with the record of what they did."""
    audit = resolve_path(settings, settings.audit.path)
    return audit.with_name(audit.stem + ".keys.db")


def open_key_store(settings: Settings) -> SQLiteKeyStore:
    return SQLiteKeyStore(keys_path(settings))

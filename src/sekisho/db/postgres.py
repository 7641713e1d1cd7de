"""The PostgreSQL side of the database handle: a psycopg 3 connection pool behind the same
`read()` / `write()` / `dialect` / `where` / `close()` contract as SQLiteDatabase.

Service SQL is written once with `?` placeholders; `postgres_sql` turns it into psycopg's `%s` form
in this one place. Each `read()` or `write()` is one transaction on a pooled connection: a read
sees one snapshot, a write commits on leaving the block and rolls back on an exception. Password and TLS come the libpq way: in the URL,
or from PGPASSWORD / PGSSLMODE / PGSSLROOTCERT ... in the environment, so no secret needs to sit in
sekisho.toml.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sekisho.db.database import DatabaseError
from sekisho.db.migrations import TABLE, MigrationError, Migrations

# How long opening waits for the server before saying it is down.
CONNECT_TIMEOUT_S = 10.0
# Statements outside single-quoted literals and double-quoted names: where `?` is a placeholder.
_QUOTED = re.compile(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")")


@lru_cache(maxsize=4096)
def postgres_sql(sql: str) -> str:
    """`?` placeholders as psycopg's `%s`, and literal `%` doubled (psycopg reads `%` as the start
    of a placeholder everywhere in the text). `?` inside quotes stays as it is."""
    parts = _QUOTED.split(sql)
    return "".join(part.replace("%", "%%") if i % 2 else part.replace("%", "%%").replace("?", "%s")
                   for i, part in enumerate(parts))


def redacted(url: str) -> str:
    """The URL without its password (in the user part or as a query parameter), for messages."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"], safe="/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def advisory_key(name: str) -> int:
    """A stable 32-bit advisory lock key for a name (the same in every process and server)."""
    return zlib.crc32(b"sekisho:" + name.encode("utf-8"))


class PgConnection:
    """One pooled connection inside a transaction, with the sqlite3-like `execute` / `executemany`
    the service code calls (`?` placeholders); `raw` is the psycopg connection."""

    __slots__ = ("raw",)
    dialect = "postgresql"

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.raw.execute(postgres_sql(sql), tuple(params) if params else None)

    def executemany(self, sql: str, params: Any) -> Any:
        cursor = self.raw.cursor()
        rows = list(params)
        if rows:
            cursor.executemany(postgres_sql(sql), rows)
        return cursor


# Connections per process and database URL, shared by every handle on it (the store, the audit
# log, the access tables): a server process holds at most this many, so N servers x W workers
# stay within PostgreSQL's max_connections (100 by default) at N x W x 16.
POOL_MAX = 16


class _SharedPool:
    """One psycopg pool per URL in a process, closed when its last handle closes."""

    _lock = threading.Lock()
    _open: dict[str, _SharedPool] = {}

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.handles = 0

    @classmethod
    def acquire(cls, url: str, where: str) -> Any:
        import psycopg
        from psycopg_pool import ConnectionPool, PoolTimeout

        with cls._lock:
            shared = cls._open.get(url)
            if shared is None:
                pool = ConnectionPool(url, min_size=1, max_size=POOL_MAX, open=False, name="sekisho",
                                      kwargs={"connect_timeout": int(CONNECT_TIMEOUT_S)})
                try:
                    # The first connection, made here, names why it fails; the pool's own wait
                    # would only say that it timed out.
                    psycopg.connect(url, connect_timeout=int(CONNECT_TIMEOUT_S)).close()
                    pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
                except (psycopg.Error, PoolTimeout) as exc:
                    pool.close()
                    reason = " ".join(str(exc).split()) or type(exc).__name__
                    raise DatabaseError(f"{where}: cannot connect to PostgreSQL: {reason}") from None
                shared = cls._open[url] = _SharedPool(pool)
            shared.handles += 1
            return shared.pool

    @classmethod
    def release(cls, url: str) -> None:
        with cls._lock:
            shared = cls._open[url]
            shared.handles -= 1
            if shared.handles == 0:
                del cls._open[url]
                shared.pool.close()


class PostgresDatabase:
    dialect = "postgresql"

    def __init__(self, url: str, **_sqlite_only: Any) -> None:
        """Connects at once: a server that is down, refuses the password or does not exist is one
        line naming the URL (without its password) and the reason. Options meant for SQLite files
        (synchronous, foreign_keys) do not apply: PostgreSQL commits durably and checks keys."""
        import psycopg
        from psycopg_pool import PoolTimeout

        self.url = url
        self.where = redacted(url)
        self.errors: tuple[type[BaseException], ...] = (psycopg.Error, PoolTimeout)
        self._repeatable_read = psycopg.IsolationLevel.REPEATABLE_READ
        self._closed = False
        self._lock = threading.Lock()
        self._pool = _SharedPool.acquire(url, self.where)

    @contextmanager
    def _transaction(self, *, snapshot: bool) -> Iterator[PgConnection]:
        if self._closed:
            raise DatabaseError(f"{self.where}: the database is closed")
        # The pool commits when the block ends normally and rolls back on an exception. psycopg
        # opens the transaction with these settings in its BEGIN (no extra round trip).
        with self._pool.connection() as raw:
            raw.isolation_level = self._repeatable_read if snapshot else None
            raw.read_only = snapshot or None
            yield PgConnection(raw)

    def read(self) -> AbstractContextManager[PgConnection]:
        """A read-only transaction whose statements all see one snapshot (REPEATABLE READ), as an
        SQLite read transaction does: verify reads the anchor and the chain as of one moment."""
        return self._transaction(snapshot=True)

    def write(self) -> AbstractContextManager[PgConnection]:
        """A READ COMMITTED transaction: a statement waiting on another writer's row lock sees its
        committed result, so conditional updates (claims, decisions) take effect once."""
        return self._transaction(snapshot=False)

    def apply_migrations(self, migrations: Migrations) -> list[str]:
        """Every step of `migrations` not yet recorded in `_migrations`, each in its own
        transaction under one advisory lock, so servers starting at once migrate one after the
        other (the later one finds the steps done). Returns the names applied."""
        key = advisory_key("migrations")

        @contextmanager
        def locked() -> Iterator[PgConnection]:
            with self.write() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(?)", (key,))
                yield conn

        with locked() as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (name TEXT PRIMARY KEY, "
                         "applied_at DOUBLE PRECISION NOT NULL)")
        try:
            return migrations.apply_each(locked, where=self.where)
        except self.errors as exc:
            raise MigrationError(f"{self.where}: {migrations.part} migration failed: {' '.join(str(exc).split())}") \
                from None

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                _SharedPool.release(self.url)

"""A small database handle the service tables are written against (keys, sessions, rate limits,
ingest jobs, conversations...), so that one SQL text serves the embedded SQLite file and a
PostgreSQL server alike.

    db = open_database(path_or_url)
    with db.read() as conn:
        conn.execute("SELECT ... WHERE id = ?", (x,)).fetchone()
    with db.write() as conn:            # one transaction, committed on leaving
        conn.execute("UPDATE ...", (...))

Statements use `?` placeholders and portable SQL; a step that must differ asks `db.dialect`.
SQLite: a connection per thread, WAL, writes as BEGIN IMMEDIATE (another process waits on the
busy timeout instead of failing half-way).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from sekisho.errors import SekishoError


class DatabaseError(SekishoError):
    """The database cannot be opened or used; the message names it and the reason."""


class Connection(Protocol):
    def execute(self, sql: str, params: Any = ()) -> Any: ...

    def executemany(self, sql: str, params: Any) -> Any: ...


class Database(Protocol):
    dialect: str  # "sqlite" | "postgresql"
    where: str  # what messages call it: the file, or the URL without its password
    errors: tuple[type[BaseException], ...]  # what the driver raises: callers turn these into one line

    def read(self) -> Any: ...

    def write(self) -> Any: ...

    def close(self) -> None: ...


class SQLiteDatabase:
    dialect = "sqlite"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL", foreign_keys: bool = False) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self._synchronous = synchronous
        self._foreign_keys = foreign_keys
        self._closed = False
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.connection()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise DatabaseError(f"{self.path}: cannot open the database: {exc}") from None

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (SQLite connections are not shared between threads)."""
        if self._closed:
            raise DatabaseError(f"{self.path}: the database is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL: durable at checkpoints, consistent always (WAL); the audit log asks for FULL.
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
            if self._foreign_keys:
                conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection in a read transaction: its statements see one snapshot, as on
        PostgreSQL (inside a write of this thread, that write's own view)."""
        conn = self.connection()
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            conn = self.connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        self._closed = True
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


def dialect_of(conn: Connection) -> str:
    """Which SQL a connection speaks, for a migration step or a statement handed only the
    connection: "postgresql" for sekisho.db.postgres's connections, else "sqlite"."""
    return getattr(conn, "dialect", "sqlite")


def open_database(target: str | Path, **options: Any) -> Database:
    """The database at a file path (SQLite) or a postgresql:// URL."""
    if str(target).startswith(("postgresql://", "postgres://")):
        from sekisho.db.postgres import PostgresDatabase

        return PostgresDatabase(str(target), **options)
    return SQLiteDatabase(target, **options)

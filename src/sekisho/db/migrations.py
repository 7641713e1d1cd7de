"""Named migrations, recorded as applied (after simonw/llm's migrations.py).

Each part that keeps tables (the store, ingest jobs, the key store...) declares its schema as an
ordered list of named steps. A step runs once: its name goes into `_migrations` (as
"part.step", so several parts can share one database) in the same transaction as its statements,
so a crash leaves either both or neither. Names never change and steps are only ever appended, so
a database tells which sekisho wrote it: a step of this part that this sekisho does not know means
a newer sekisho migrated it, and opening is refused rather than guessed at.

    STORE = Migrations("store")

    @STORE.step("documents")
    def _(conn):
        conn.execute("CREATE TABLE documents (...)")

    STORE.apply(open_database("kb/sekisho.db"))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sekisho.errors import SekishoError

TABLE = "_migrations"


class MigrationError(SekishoError):
    """The database was written by a newer sekisho, or a step failed; names the database and step."""


@dataclass(frozen=True)
class Migration:
    name: str
    run: Callable[[Any], None]  # receives the connection, inside the migration's transaction


def sql_statements(script: str) -> list[str]:
    """A script split into statements, comment lines dropped (so each runs inside the caller's
    transaction; sqlite3's executescript would commit first)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class Migrations:
    def __init__(self, part: str) -> None:
        self.part = part  # "store", "jobs", "access": recorded names are "part.step"
        self._steps: list[Migration] = []

    @property
    def names(self) -> list[str]:
        return [m.name for m in self._steps]

    def _recorded(self, name: str) -> str:
        return f"{self.part}.{name}"

    def step(self, name: str) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
        """Register the decorated function as the next step."""

        def register(fn: Callable[[Any], None]) -> Callable[[Any], None]:
            self.add(Migration(name, fn))
            return fn

        return register

    def sql(self, name: str, script: str) -> None:
        """Register a step that runs `script` statement by statement."""

        def run(conn: Any) -> None:
            for statement in sql_statements(script):
                conn.execute(statement)

        self.add(Migration(name, run))

    def add(self, migration: Migration) -> None:
        if migration.name in self.names:
            raise ValueError(f"{self.part}: migration {migration.name!r} is declared twice")
        self._steps.append(migration)

    def apply(self, db: Any, *, legacy: Callable[[Any], int] | None = None) -> list[str]:
        """Apply to a sekisho.db.Database (SQLite file or PostgreSQL server). `legacy(conn)` says how
        many leading steps an SQLite file from before named migrations already has. Returns the
        names applied."""
        if db.dialect == "sqlite":
            # Each step in a BEGIN IMMEDIATE transaction of its own: another process migrating at
            # the same moment waits, then finds the step done.
            with db.write() as conn:
                conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
            return self.apply_each(db.write, where=db.where, legacy=legacy)
        return db.apply_migrations(self)

    def apply_each(self, transaction: Callable[[], AbstractContextManager[Any]], *, where: str,
                   legacy: Callable[[Any], int] | None = None) -> list[str]:
        """Each step not yet recorded, in a `transaction()` of its own that excludes every other
        migrator (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL): the step and its
        record commit together, and a migrator that waited finds the step done."""
        applied: list[str] = []
        for migration in self._steps:
            with transaction() as conn:
                done = self._done(conn)
                if not done and legacy is not None:
                    done = self._record_legacy(conn, legacy(conn))
                self._refuse_unknown(done, where)
                if migration.name not in done:
                    migration.run(conn)
                    conn.execute(f"INSERT INTO {TABLE}(name, applied_at) VALUES (?, ?)",
                                 (self._recorded(migration.name), time.time()))
                    applied.append(migration.name)
        return applied

    def _done(self, conn: Any) -> set[str]:
        """The steps of this part the database has, by step name."""
        prefix = self._recorded("")
        return {row[0][len(prefix):] for row in conn.execute(f"SELECT name FROM {TABLE}") if row[0].startswith(prefix)}

    def _record_legacy(self, conn: Any, count: int) -> set[str]:
        names = self.names[:count]
        conn.executemany(f"INSERT INTO {TABLE}(name, applied_at) VALUES (?, ?)",
                         [(self._recorded(n), time.time()) for n in names])
        return set(names)

    def _refuse_unknown(self, done: set[str], where: str) -> None:
        unknown = sorted(done - set(self.names))
        if unknown:
            raise MigrationError(f"{where}: its {self.part} tables were migrated by a newer sekisho (step "
                                 f"{unknown[0]!r} is unknown here); upgrade sekisho")

    def first(self, count: int) -> Migrations:
        """The first `count` steps alone: the schema an older sekisho had (for upgrade tests)."""
        older = Migrations(self.part)
        older._steps = self._steps[:count]
        return older

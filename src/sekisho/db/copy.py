"""Rows copied from one database to another (SQLite file -> PostgreSQL for `sekisho migrate`),
safe to repeat: a row whose key the target already has is kept or updated, never duplicated."""

from __future__ import annotations

from collections.abc import Sequence

from sekisho.db.database import Database

BATCH = 1000


def copy_table(source: Database, target: Database, table: str, columns: Sequence[str], key: Sequence[str], *,
               update: bool, where: str = "1 = 1", params: Sequence[object] = ()) -> int:
    """Copy `columns` of `table`'s rows matching `where` into the same table of `target`. A row
    already there (same `key`) is overwritten when `update` (state that changes: a review's
    decision, a key's revocation), left as it is otherwise (append-only records). Returns the rows
    read from the source."""
    names = ", ".join(columns)
    marks = ", ".join("?" * len(columns))
    changed = [c for c in columns if c not in key]
    action = ("DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in changed)) if update and changed \
        else "DO NOTHING"
    insert = f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT ({', '.join(key)}) {action}"
    with source.read() as conn:
        rows = conn.execute(f"SELECT {names} FROM {table} WHERE {where} ORDER BY {', '.join(key)}",
                            params).fetchall()
    for start in range(0, len(rows), BATCH):
        with target.write() as conn:
            conn.executemany(insert, [tuple(r) for r in rows[start:start + BATCH]])
    return len(rows)

"""The change log the derived indexes catch up from, in both stores (the SQL is portable).

Every write moves a generation counter on and logs the chunk rowids it touched (`chunk_changes`),
in the write's own transaction. The tantivy indexes (beside the SQLite file, or in each
PostgreSQL server's own folder) and each SQLite process's vector matrix record the generation
they reflect, replay the rowids written since, and rebuild only when the log no longer reaches
back that far.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# How many generations of chunk_changes are kept: whatever is derived from an older generation
# is rebuilt instead of caught up.
CHANGE_LOG_GENERATIONS = 10_000
# The chunk rowids written after a generation (bound to ?): what both derived indexes replay.
CHANGED_SINCE = "SELECT DISTINCT rowid FROM chunk_changes WHERE generation > ?"


# `conn`: a sqlite3 connection or a PgConnection (both take `?` parameters).
def current_generation(conn: Any) -> int:
    return int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])


def bump_generation(conn: Any, changed_rowids: Sequence[int] = (), *, lexical_rebuild: bool = False) -> None:
    """Move the generation on and log which chunk rowids it touched, so the tantivy index and the
    vector matrix can replay them; `lexical_rebuild` says every chunk's lexical text changed
    (both rebuild instead)."""
    log_changes(conn, next_generation(conn), changed_rowids, lexical_rebuild=lexical_rebuild)


def next_generation(conn: Any) -> int:
    """Move the generation on; returns the new one. On PostgreSQL this first statement of a write
    also queues every other writer on the meta row until the transaction ends."""
    return int(conn.execute(
        "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE key = 'generation' "
        "RETURNING CAST(value AS BIGINT)").fetchone()[0])


def log_changes(conn: Any, generation: int, changed_rowids: Sequence[int] = (), *,
                lexical_rebuild: bool = False) -> None:
    """Log the chunk rowids `generation` touched (see bump_generation) and forget what is older
    than CHANGE_LOG_GENERATIONS."""
    if lexical_rebuild:
        conn.execute("DELETE FROM chunk_changes")
        floor = generation
    else:
        conn.executemany("INSERT INTO chunk_changes(generation, rowid) VALUES (?, ?)",
                         [(generation, r) for r in dict.fromkeys(changed_rowids)])
        floor = generation - CHANGE_LOG_GENERATIONS
        conn.execute("DELETE FROM chunk_changes WHERE generation <= ?", (floor,))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'changes_floor' AND CAST(value AS BIGINT) < ?",
                 (str(floor), floor))


def changes_since(conn: Any, since: int | None) -> tuple[int, list[int] | None]:
    """Inside the caller's read transaction: the store's generation now, and the rowids of the
    chunks written after generation `since`; None instead of the rowids when the change log no
    longer reaches back that far (or `since` is None), so the caller must rebuild."""
    now = current_generation(conn)
    floor = int(conn.execute("SELECT value FROM meta WHERE key = 'changes_floor'").fetchone()[0])
    if since is None or not floor <= since <= now:
        return now, None
    return now, [r for (r,) in conn.execute(CHANGED_SINCE, (since,))]

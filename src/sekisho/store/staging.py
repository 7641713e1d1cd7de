"""Re-embedding's SQL, the same in both stores: a staging set of vectors beside the live one
(`chunk_staged_vectors`, keyed like `chunk_vectors` by the chunk's row), the claim that lets one
process at a time fill it, and the check that a write's vectors come from the store's embedder.

Staged vectors are never searched. A chunk's staged vector goes with the chunk (a replaced
document's chunks are new rows, staged again later), so when every chunk has one the switch can
replace the live vectors in one transaction (each store's `switch_to_staged`).
"""

from __future__ import annotations

import time
from typing import Any

from sekisho.store.protocol import EmbedderChanged
from sekisho.store.rows import QUALIFIED_CHUNK_COLUMNS

# Chunks without a staged vector after a row (bound: after, limit), each with its document's
# title (the passage text starts with it). A chunk whose document row is missing still counts:
# the switch waits for every chunk.
UNSTAGED = (f"SELECT c.rowid, {QUALIFIED_CHUNK_COLUMNS}, COALESCE(d.title, '') FROM chunks c "
            "LEFT JOIN documents d ON d.id = c.doc_id WHERE c.rowid > ? AND NOT EXISTS "
            "(SELECT 1 FROM chunk_staged_vectors s WHERE s.rowid = c.rowid) ORDER BY c.rowid LIMIT ?")
COUNT_UNSTAGED = ("SELECT count(*) FROM chunks c WHERE NOT EXISTS "
                  "(SELECT 1 FROM chunk_staged_vectors s WHERE s.rowid = c.rowid)")


def meta(conn: Any, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def set_meta(conn: Any, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 (key, value))


def begin_staging(conn: Any, embedder: str) -> None:
    """Make `embedder` the staging target; vectors staged for another target are dropped."""
    if meta(conn, "staging_embedder") != embedder:
        conn.execute("DELETE FROM chunk_staged_vectors")
        set_meta(conn, "staging_embedder", embedder)


def check_staging(conn: Any, embedder: str, where: str) -> None:
    """Refuse to stage or switch for a target that is no longer the store's (another process
    took the claim over for another embedder)."""
    target = meta(conn, "staging_embedder")
    if target != embedder:
        raise EmbedderChanged(f"{where}: the store is being re-embedded to {target!r}, not {embedder!r}")


def record_embedder(conn: Any, embedder: str, dim: int, where: str) -> None:
    """Inside a write that adds vectors made by `embedder`: record it on a store holding no other
    embedder's chunks, refuse the write when the store's chunks are another's (it switched while
    the vectors were being made), so a store never mixes two embedders."""
    recorded = meta(conn, "embedder")
    if recorded == embedder:
        return
    if recorded is not None and conn.execute("SELECT 1 FROM chunks LIMIT 1").fetchone():
        raise EmbedderChanged(f"{where}: the store's vectors are {recorded!r}'s, these were made by {embedder!r}")
    set_meta(conn, "embedder", embedder)
    set_meta(conn, "embedder_dim", str(dim))


def finish_switch(conn: Any, embedder: str, dim: int) -> None:
    """The meta half of a switch, in the switch's transaction."""
    set_meta(conn, "embedder", embedder)
    set_meta(conn, "embedder_dim", str(dim))
    conn.execute("DELETE FROM meta WHERE key = 'staging_embedder'")
    conn.execute("DELETE FROM chunk_staged_vectors")


def claim(conn: Any, name: str, worker: str, lease_s: float) -> tuple[str, float]:
    """Take or renew the claim `name` for `worker` unless another worker holds it unexpired; the
    holder afterwards and until when. One conditional upsert: two claimants at once never both win."""
    now = time.time()
    conn.execute("INSERT INTO store_claims(name, worker, until) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                 "SET worker = excluded.worker, until = excluded.until "
                 "WHERE store_claims.worker = excluded.worker OR store_claims.until < ?",
                 (name, worker, now + lease_s, now))
    holder, until = conn.execute("SELECT worker, until FROM store_claims WHERE name = ?", (name,)).fetchone()
    return holder, float(until)


def release(conn: Any, name: str, worker: str) -> None:
    conn.execute("DELETE FROM store_claims WHERE name = ? AND worker = ?", (name, worker))

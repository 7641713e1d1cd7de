"""Dense search for the SQLite store: every stored vector in one float32 matrix per process, a
brute-force dot product, caught up from the change log instead of reloaded.

numpy has no fast float16 product (13x slower than float32 at 100k x 384), so the matrix is
float32, computed without BLAS (see `dense_scores`). The matrix is shared by all threads of a
process and swapped atomically under a lock; each process keeps its own and catches up from the
store's change log at its next search.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from sekisho.store.changelog import CHANGED_SINCE, changes_since, current_generation
from sekisho.store.protocol import StoreError
from sekisho.store.sqlite.rows import chunk_ids_for_rowids, visible_doc_ids

# A matrix caught up by appending blocks and marking rows dead is copied into one block again once
# dead rows or blocks pile up (a search pays a product per block and computes scores for dead rows).
_MAX_VECTOR_BLOCKS = 16
_MAX_DEAD_SHARE = 0.2

# The dense product is memory-bound: row slices on a few threads read the matrix about as fast as
# BLAS does. Slices smaller than this cost more in hand-offs than they save.
_PRODUCT_THREADS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
_PRODUCT_SLICE_ROWS = 16_384


@lru_cache(maxsize=1)
def _product_pool() -> ThreadPoolExecutor:
    """Created on first use, not at import: most processes never search a matrix this large."""
    return ThreadPoolExecutor(max_workers=max(1, _PRODUCT_THREADS - 1), thread_name_prefix="sekisho-dense")


def dense_scores(matrix: np.ndarray, query: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """matrix @ query, computed by einsum's own loops instead of numpy's BLAS.

    OpenBLAS worker threads busy-wait for a while after every call; on a small machine they take
    the cores the embedder's OpenMP threads need for the next query (e5 query embedding p50 16 ->
    39 ms right after a BLAS product at 100k x 384: bench/dense_product.py)."""
    rows = matrix.shape[0]
    out = np.empty(rows, dtype=np.float32) if out is None else out
    parts = min(_PRODUCT_THREADS, rows // _PRODUCT_SLICE_ROWS)
    if parts <= 1:
        return np.einsum("ij,j->i", matrix, query, out=out)
    bounds = np.linspace(0, rows, parts + 1).astype(int)

    def part(i: int) -> None:
        np.einsum("ij,j->i", matrix[bounds[i]:bounds[i + 1]], query, out=out[bounds[i]:bounds[i + 1]])

    others = [_product_pool().submit(part, i) for i in range(1, parts)]
    part(0)  # the calling thread takes a slice too: one hand-off fewer (5.2 against 6.6 ms at 100k)
    for future in others:
        future.result()
    return out


@dataclass(frozen=True)
class VectorCache:
    """Every stored vector in memory. Rows live in `blocks` (float32, L2-normalised, in order);
    `alive` marks the rows still in the store once writes have been replayed (None: all). The
    arrays are never modified: a newer generation is a new VectorCache sharing the old blocks."""

    generation: int
    rowids: np.ndarray  # int64, one per row across the blocks
    blocks: tuple[np.ndarray, ...]
    doc_index: np.ndarray  # int32 per row: index into doc_ids
    doc_ids: list[str]
    alive: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return self.rowids.shape[0]

    @property
    def dim(self) -> int:
        return self.blocks[0].shape[1] if self.blocks else 0

    def scores(self, query: np.ndarray) -> np.ndarray:
        scores = np.empty(self.rows, dtype=np.float32)
        start = 0
        for block in self.blocks:
            dense_scores(block, query, out=scores[start:start + block.shape[0]])
            start += block.shape[0]
        if self.alive is not None:
            scores[~self.alive] = -np.inf
        return scores

    def compacted(self) -> VectorCache:
        """One block of the live rows: what a full reload would give, without reading SQLite."""
        keep = self.alive if self.alive is not None else np.ones(self.rows, dtype=bool)
        matrix = np.concatenate(self.blocks)[keep] if len(self.blocks) > 1 else self.blocks[0][keep]
        return VectorCache(self.generation, self.rowids[keep], (matrix,), self.doc_index[keep], self.doc_ids)


class VectorIndex:
    """The store's vectors as this process sees them; `connect()` gives the calling thread's
    connection to the store."""

    def __init__(self, path: Path, connect: Callable[[], sqlite3.Connection]) -> None:
        self.path = path
        self._conn = connect
        self._lock = threading.Lock()
        self._cache: VectorCache | None = None

    def search(self, vector: np.ndarray, k: int, tags: Sequence[str] | None = None) -> list[tuple[str, float]]:
        cache = self._current()
        if cache.rows == 0 or k <= 0:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != cache.dim:
            raise StoreError(
                f"{self.path}: query vector has {query.shape[0]} dimensions, stored vectors have "
                f"{cache.dim} (the embedder changed: re-index)"
            )
        scores = cache.scores(query)
        if tags is not None and "*" not in tags:
            allowed = visible_doc_ids(self._conn(), tags)
            mask = np.fromiter((d in allowed for d in cache.doc_ids), dtype=bool, count=len(cache.doc_ids))
            scores[~mask[cache.doc_index]] = -np.inf
        k = min(k, scores.shape[0])
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[np.isfinite(scores[top])]
        rowids = [int(r) for r in cache.rowids[top]]
        ids = chunk_ids_for_rowids(self._conn(), rowids)
        return [(ids[r], float(scores[i])) for r, i in zip(rowids, top) if r in ids]

    def _current(self) -> VectorCache:
        generation = current_generation(self._conn())
        cache = self._cache
        if cache is not None and cache.generation == generation:
            return cache
        with self._lock:
            cache = self._cache
            if cache is not None and cache.generation == generation:
                return cache
            cache = (self._updated_vectors(cache) if cache is not None else None) or self._load_vectors()
            self._cache = cache
            return cache

    def _updated_vectors(self, cache: VectorCache) -> VectorCache | None:
        """`cache` moved forward by the logged changes since its generation, or None when the log
        does not reach back that far. Rows of changed chunks are marked dead and their current
        vectors appended as a new block, so a write costs searchers the rows it touched, not a
        reload of every vector (0.7 s at 100k chunks) nor a copy of the matrix."""
        conn = self._conn()
        conn.execute("BEGIN")  # one snapshot for the generation, the log and the rows
        try:
            generation, changed = changes_since(conn, cache.generation)
            replaced = conn.execute("SELECT value FROM meta WHERE key = 'vectors_replaced'").fetchone()
            if changed is None or (replaced is not None and int(replaced[0]) > cache.generation):
                return None  # the log does not reach back, or a re-embedding replaced every vector
            rows = conn.execute(
                f"SELECT v.rowid, v.vector, c.doc_id FROM ({CHANGED_SINCE}) l "
                "CROSS JOIN chunk_vectors v ON v.rowid = l.rowid CROSS JOIN chunks c ON c.rowid = l.rowid "
                "ORDER BY v.rowid", (cache.generation,)).fetchall()
        finally:
            conn.execute("COMMIT")
        alive = np.ones(cache.rows, dtype=bool) if cache.alive is None else cache.alive.copy()
        alive &= ~np.isin(cache.rowids, np.array(changed, dtype=np.int64))
        doc_ids = list(cache.doc_ids)
        doc_pos = {d: i for i, d in enumerate(doc_ids)}
        for _, _, doc_id in rows:
            if doc_id not in doc_pos:
                doc_pos[doc_id] = len(doc_ids)
                doc_ids.append(doc_id)
        blocks = cache.blocks
        if rows:
            block = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
            if cache.rows and block.shape[1] != cache.dim:
                return None  # vectors of another dimension: let the full load report it
            blocks = (*blocks, block)
        updated = VectorCache(
            generation,
            np.concatenate([cache.rowids, np.array([r[0] for r in rows], dtype=np.int64)]),
            blocks,
            np.concatenate([cache.doc_index, np.array([doc_pos[r[2]] for r in rows], dtype=np.int32)]),
            doc_ids,
            np.concatenate([alive, np.ones(len(rows), dtype=bool)]),
        )
        if len(updated.blocks) > _MAX_VECTOR_BLOCKS or (~updated.alive).sum() > _MAX_DEAD_SHARE * updated.rows:
            return updated.compacted()
        return updated

    def _load_vectors(self) -> VectorCache:
        """Read every vector into one float32 matrix (dim x 4 bytes per chunk: 150 MB at 100k
        chunks of 384 dimensions)."""
        conn = self._conn()
        # Read generation and rows in one read transaction so they describe the same snapshot.
        conn.execute("BEGIN")
        try:
            generation = int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
            count = conn.execute("SELECT count(*) FROM chunk_vectors").fetchone()[0]
            doc_ids: list[str] = []
            doc_pos: dict[str, int] = {}
            rowids = np.empty(count, dtype=np.int64)
            doc_index = np.empty(count, dtype=np.int32)
            matrix: np.ndarray | None = None
            cursor = conn.execute(
                "SELECT v.rowid, v.vector, c.doc_id FROM chunk_vectors v JOIN chunks c ON c.rowid = v.rowid "
                "ORDER BY v.rowid"
            )
            n = 0
            # Batches keep the transient Python bytes small next to the matrix itself.
            while batch := cursor.fetchmany(4096):
                block = np.frombuffer(b"".join(r[1] for r in batch), dtype=np.float32).reshape(len(batch), -1)
                if matrix is None:
                    matrix = np.empty((count, block.shape[1]), dtype=np.float32)
                matrix[n:n + len(batch)] = block
                rowids[n:n + len(batch)] = [r[0] for r in batch]
                for i, r in enumerate(batch, n):
                    if r[2] not in doc_pos:
                        doc_pos[r[2]] = len(doc_ids)
                        doc_ids.append(r[2])
                    doc_index[i] = doc_pos[r[2]]
                n += len(batch)
        finally:
            conn.execute("COMMIT")
        blocks = (matrix[:n],) if matrix is not None else ()
        return VectorCache(generation, rowids[:n], blocks, doc_index[:n], doc_ids)

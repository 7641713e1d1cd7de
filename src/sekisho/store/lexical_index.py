"""A tantivy index derived from a store's chunks, kept current from its change log: the fast BM25
path of both stores (beside the SQLite file; in each PostgreSQL server's own folder).

The store stays the truth and answers itself (FTS5, or PostgreSQL's tsvector BM25) whenever this
index does not reflect its current generation. What the two stores differ in is where the chunks
and the change log are read from: a `ChangeSource`. The catch-up is the same for both: replay the
chunk rowids logged since the index's generation, or rebuild when the log does not reach back that
far or the index was built for another store. It ranks with the stores' BM25 over the same
tokens; one difference stays: tantivy's chunk total and average length count replaced chunks
until it merges their segments away, so after many writes its scores drift slightly.

When the catch-up runs is the store's choice: inline, by the search that finds the index behind
(SQLite: a catch-up reads the local file), or on a background thread while the store answers that
search (PostgreSQL: a rebuild reads every chunk over the network, seconds at 100k chunks).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sekisho.store.tantivy_index import IndexBusy, IndexState, LexicalIndexError, TantivyIndex

log = logging.getLogger("sekisho.store")


@dataclass(frozen=True)
class Changes:
    """What changed in a store after a generation, read in one snapshot."""

    generation: int  # the store's generation in that snapshot
    changed: list[int] | None  # rowids to drop and re-add; None: every chunk (rebuild)
    rows: list[tuple[int, str, Sequence[str]]]  # (rowid, tokens, access tags) of the chunks there now


class ChangeSource(Protocol):
    """Where a derived index reads a store from. `errors` are the store's database errors: a
    catch-up failing with one is retried later, the store answering meanwhile."""

    errors: tuple[type[BaseException], ...]

    def generation(self) -> int: ...

    def changes(self, since: int | None) -> Changes: ...


class _Closing(Exception):
    """The store is closing: a background catch-up stops and discards its batch."""


class DerivedLexicalIndex:
    """The tantivy index at `folder` for the store `store_id`, caught up from `source`; `fallback`
    names what answers when it cannot (for the log)."""

    def __init__(self, folder: Path, store_id: str, source: ChangeSource, *, fallback: str,
                 background: bool = False) -> None:
        self.folder = folder
        self._fallback = fallback
        self._store_id = store_id
        self._source = source
        self._background = background
        self._sync_lock = threading.Lock()
        self._closing = threading.Event()
        self._worker: threading.Thread | None = None
        self._index: TantivyIndex | None = None
        try:
            self._index = TantivyIndex(folder)
        except LexicalIndexError as exc:
            log.warning("%s; searching with %s only", exc, fallback)

    def close(self) -> None:
        """Stop a background catch-up (its batch is discarded), or catch up inline before going."""
        self._closing.set()
        worker = self._worker
        if worker is not None:
            worker.join()
        elif not self._background:
            self._closing.clear()
            self.sync()  # what this process wrote is indexed before it goes
        self._index = None

    def current(self) -> bool:
        index = self._index
        return index is not None and index.state() == self._expected()

    def _expected(self) -> IndexState:
        return IndexState(self._store_id, self._source.generation())

    def search(self, terms: Sequence[str], k: int, tags: Sequence[str] | None) -> list[tuple[int, float]] | None:
        """(chunk rowid, BM25) best first, or None when the index is off, behind or failing (the
        store answers; the index catches up inline or in the background)."""
        index = self._index
        if index is None:
            return None
        try:
            found = index.search(terms, k, tags, self._expected())
            if found is None:
                if self._background:
                    self._catch_up_in_background()
                elif self.sync():
                    found = index.search(terms, k, tags, self._expected())
        except (ValueError, OSError) as exc:
            self._give_up(exc)
            return None
        return found

    def _catch_up_in_background(self) -> None:
        if self._sync_lock.locked() or self._closing.is_set():
            return
        worker = threading.Thread(target=self.sync, name="sekisho-lexical-index", daemon=True)
        self._worker = worker
        worker.start()

    def sync(self) -> bool:
        """Bring the index up to the store's current generation: replay the logged changes, or
        rebuild when the log does not reach back to the index's generation or the index belongs
        to another store. Returns False when that cannot happen now (no index, another writer
        holds it, the store failed). Never raises: the store answers meanwhile."""
        index = self._index
        if index is None or not self._sync_lock.acquire(blocking=False):
            return False
        try:
            with index.writing() as batch:
                current = index.state()
                ours = current is not None and current.store_id == self._store_id
                changes = self._source.changes(current.generation if ours else None)
                target = IndexState(self._store_id, changes.generation)
                if current == target:
                    return True
                if changes.changed is None:
                    batch.clear()
                else:
                    batch.delete(changes.changed)
                for n, (rowid, tokens, tags) in enumerate(changes.rows):
                    if n % 1000 == 0 and self._closing.is_set():
                        raise _Closing
                    batch.add(rowid, tokens, tags)
                batch.commit(target)
            return True
        except (IndexBusy, _Closing):
            return False
        except self._source.errors as exc:
            log.warning("%s: lexical index not caught up (%s); searching with %s meanwhile", self.folder, exc,
                        self._fallback)
            return False
        except (LexicalIndexError, ValueError, OSError) as exc:
            self._give_up(exc)
            return False
        finally:
            self._sync_lock.release()

    def _give_up(self, exc: Exception) -> None:
        """A failing index (disk full, damaged files) is dropped for this process rather than
        retried on every query; the store serves the searches, and the next process rebuilds it."""
        if self._index is not None:
            log.warning("%s: lexical index failed (%s); searching with %s", self.folder, exc, self._fallback)
        self._index = None

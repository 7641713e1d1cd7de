"""The embedded SQLite store: one file holding documents, chunks, a BM25 index and embeddings.

Layout
- `documents` and `chunks`: the records, with the original text kept for display and citation.
- `document_tags`: one row per (document, access tag), so tag filters are an indexed lookup.
- `chunk_fts`: an FTS5 table over pre-tokenised text (tokens joined by spaces). The morphological
  analysis happens in Python (retrieval/tokenize.py); FTS5 only splits on the spaces and ranks with
  its built-in bm25(). Living in the same database means the lexical index commits in the same
  transaction as the chunks it indexes. Searches normally run on a tantivy index derived from it
  (`<file>.lexical/`, store/lexical_index.py; lexical.py decides which answers); FTS5 answers whenever that index is not current.
- `chunk_vectors`: one float32 blob per chunk. Dense search is a brute-force dot product over a
  float32 matrix loaded once per process (numpy has no fast float16 product: 13x slower than
  float32 at 100k x 384; docs/benchmarks.md), computed without BLAS (vectors.py).
- `chunk_changes`: the chunk rowids each write touched, by generation (a counter every write
  moves). The tantivy index and the vector matrix catch up on it instead of being rebuilt.
- `chunk_staged_vectors`: another embedder's vectors while the store is re-embedded
  (store/staging.py); the switch to them is one write, after which every process's vector
  matrix reloads (meta 'vectors_replaced', vectors.py).

Connections and threads
- SQLite connections are not shared between threads: each thread that touches the store gets its
  own connection (thread-local), opened lazily. WAL mode lets those readers run while one writer
  commits. Writes are serialised by a process-wide lock and run as `BEGIN IMMEDIATE` transactions,
  so a second writer (another process) waits on the busy timeout instead of failing half-way.
- The in-memory vector matrix is shared by all threads and swapped atomically under a lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from sekisho.db import DatabaseError, SQLiteDatabase
from sekisho.store import staging
from sekisho.store.changelog import bump_generation, changes_since, current_generation
from sekisho.store.protocol import StoreError
from sekisho.store.records import Chunk, Document, StoredChunks, Unstaged
from sekisho.store.rows import QUALIFIED_CHUNK_COLUMNS, checked_replacement, chunk_row, document_row
from sekisho.store.sqlite.lexical import LexicalIndex
from sekisho.store.sqlite.rows import CHUNK_COLUMNS, DOC_COLUMNS, chunk_of, document_of, rows_for_ids
from sekisho.store.sqlite.schema import STORE_MIGRATIONS, legacy_steps, mark_named
from sekisho.store.sqlite.vectors import VectorIndex


class SQLiteStore:
    """The `Store` protocol over one SQLite file. See the module docstring for threading."""

    def __init__(self, path: str | Path, *, lexical_index: bool = True):
        """`lexical_index=False` leaves BM25 to FTS5 alone (no tantivy index beside the file)."""
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            raise StoreError(f"{self.path}: folder {self.path.parent} does not exist")
        self._closed = False
        try:
            # The documents, and the service tables that live with them (ingest jobs,
            # conversations), written through one handle: a connection per thread.
            self.db = SQLiteDatabase(self.path, foreign_keys=True)
            STORE_MIGRATIONS.apply(self.db, legacy=legacy_steps)
            with self._writing() as conn:
                mark_named(conn)
        except (sqlite3.DatabaseError, DatabaseError) as exc:
            self.close()
            raise StoreError(f"{self.path}: cannot open as a sekisho store: {exc}") from None
        except BaseException:
            self.close()
            raise
        self.lexical = LexicalIndex(self.path, self._conn, self.get_meta("store_id") or "", tantivy=lexical_index)
        self.vectors = VectorIndex(self.path, self._conn)

    # -- connections -----------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"{self.path}: store is closed")
        return self.db.connection()

    def close(self) -> None:
        lexical = getattr(self, "lexical", None)
        if not self._closed and lexical is not None:
            lexical.close()
        self._closed = True
        db = getattr(self, "db", None)
        if db is not None:
            db.close()

    def applied_migrations(self) -> list[str]:
        return [r[0] for r in self._conn().execute("SELECT name FROM _migrations ORDER BY applied_at, rowid")]

    def generation(self) -> int:
        """A counter bumped by every write; caches compare it to know when to reload."""
        return current_generation(self._conn())

    def get_meta(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- documents -------------------------------------------------------------------------------

    def document_by_path(self, path: str) -> Document | None:
        row = self._conn().execute(f"SELECT {DOC_COLUMNS} FROM documents WHERE path = ?", (path,)).fetchone()
        return document_of(row) if row else None

    def document_by_id(self, doc_id: str) -> Document | None:
        row = self._conn().execute(f"SELECT {DOC_COLUMNS} FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return document_of(row) if row else None

    def document_titles(self, doc_ids: Iterable[str]) -> dict[str, str]:
        """Titles without loading the documents' text (search re-scoring needs only these)."""
        ids = list(dict.fromkeys(doc_ids))
        marks = ",".join("?" * len(ids))
        return dict(self._conn().execute(f"SELECT id, title FROM documents WHERE id IN ({marks})", ids)) if ids else {}

    def documents(self) -> list[Document]:
        rows = self._conn().execute(f"SELECT {DOC_COLUMNS} FROM documents ORDER BY path").fetchall()
        return [document_of(r) for r in rows]

    def chunk_count(self) -> int:
        return self._conn().execute("SELECT count(*) FROM chunks").fetchone()[0]

    def replace_document(
        self,
        document: Document,
        chunks: Sequence[Chunk],
        lexical_texts: Sequence[str],
        vectors: np.ndarray,
        embedder: str | None = None,
    ) -> None:
        vectors = checked_replacement(document, chunks, lexical_texts, vectors)
        with self._writing() as conn:
            changed = self._delete_rows(conn, document.id)
            # A different id may already own this path (e.g. the id scheme changed): the path is
            # the user's handle on a document, so the newcomer replaces it.
            old = conn.execute("SELECT id FROM documents WHERE path = ?", (document.path,)).fetchone()
            if old:
                changed += self._delete_rows(conn, old[0])
            if embedder is not None:
                staging.record_embedder(conn, embedder, vectors.shape[1], str(self.path))
            conn.execute(f"INSERT INTO documents({DOC_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         document_row(document))
            conn.executemany(
                "INSERT INTO document_tags(doc_id, tag) VALUES (?, ?)",
                [(document.id, tag) for tag in dict.fromkeys(document.tags)],
            )
            for chunk, lexical, vector in zip(chunks, lexical_texts, vectors, strict=True):
                cur = conn.execute(f"INSERT INTO chunks({CHUNK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                   chunk_row(chunk))
                rowid = cur.lastrowid
                conn.execute("INSERT INTO chunk_fts(rowid, tokens) VALUES (?, ?)", (rowid, lexical))
                conn.execute("INSERT INTO chunk_vectors(rowid, vector) VALUES (?, ?)", (rowid, vector.tobytes()))
                changed.append(rowid)
            bump_generation(conn, changed)

    def reindex_lexical(self, lexical_of: Callable[[Document, list[Chunk]], list[str]], scheme: str) -> int:
        """Rewrite every chunk's lexical text with `lexical_of(document, its chunks)` and record
        `scheme` under the meta key 'lexical_scheme', in one transaction: a store whose index was
        built by an older analyser moves forward without re-embedding. Returns the chunks rewritten."""
        with self._writing() as conn:
            rewritten = 0
            docs = [document_of(r) for r in conn.execute(f"SELECT {DOC_COLUMNS} FROM documents").fetchall()]
            for document in docs:
                rows = conn.execute(
                    f"SELECT rowid, {CHUNK_COLUMNS} FROM chunks WHERE doc_id = ? ORDER BY ordinal",
                    (document.id,),
                ).fetchall()
                texts = lexical_of(document, [chunk_of(r[1:]) for r in rows])
                conn.executemany("DELETE FROM chunk_fts WHERE rowid = ?", [(r[0],) for r in rows])
                conn.executemany("INSERT INTO chunk_fts(rowid, tokens) VALUES (?, ?)",
                                 [(r[0], t) for r, t in zip(rows, texts, strict=True)])
                rewritten += len(rows)
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('lexical_scheme', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (scheme,),
            )
            bump_generation(conn, lexical_rebuild=True)
        return rewritten

    def delete_document(self, doc_id: str) -> None:
        with self._writing() as conn:
            bump_generation(conn, self._delete_rows(conn, doc_id))

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: serialised in this process by the write lock and against other
        processes by BEGIN IMMEDIATE; all of it commits or none does.

        The tantivy index is not touched here: one tantivy commit costs about 20 ms, 15x a
        five-chunk SQLite write (bench/lexical_engines.py), so a batch of writes is caught up
        once, by the next search or by close()."""
        if self._closed:
            raise StoreError(f"{self.path}: store is closed")
        with self.db.write() as conn:
            yield conn

    @staticmethod
    def _delete_rows(conn: sqlite3.Connection, doc_id: str) -> list[int]:
        """Delete a document and everything indexed for it; returns its chunks' rowids."""
        rowids = [r[0] for r in conn.execute("SELECT rowid FROM chunks WHERE doc_id = ?", (doc_id,))]
        conn.executemany("DELETE FROM chunk_fts WHERE rowid = ?", [(r,) for r in rowids])
        conn.executemany("DELETE FROM chunk_vectors WHERE rowid = ?", [(r,) for r in rowids])
        conn.executemany("DELETE FROM chunk_staged_vectors WHERE rowid = ?", [(r,) for r in rowids])
        conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        conn.execute("DELETE FROM document_tags WHERE doc_id = ?", (doc_id,))
        conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        return rowids

    # -- re-embedding (store/staging.py) -----------------------------------------------------------

    def begin_staging(self, embedder: str) -> None:
        with self._writing() as conn:
            staging.begin_staging(conn, embedder)

    def unstaged_chunks(self, limit: int, after: int = 0) -> Unstaged:
        with self.db.read() as conn:
            generation = current_generation(conn)
            rows = conn.execute(staging.UNSTAGED, (after, limit)).fetchall()
        return Unstaged(generation, [r[0] for r in rows], [chunk_of(r[1:10]) for r in rows], [r[10] for r in rows])

    def stage_vectors(self, embedder: str, batch: Unstaged, vectors: np.ndarray) -> int:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._writing() as conn:
            staging.check_staging(conn, embedder, str(self.path))
            # SQLite may give a new chunk the row number of one deleted since the batch was read:
            # rows written since then are left for a later batch, which reads their text anew.
            _, changed = changes_since(conn, batch.generation)
            if changed is None:
                return 0
            gone = set(changed)
            rows = [(key, vector.tobytes()) for key, vector in zip(batch.keys, vectors, strict=True) if key not in gone]
            conn.executemany("INSERT OR REPLACE INTO chunk_staged_vectors(rowid, vector) VALUES (?, ?)", rows)
        return len(rows)

    def staged_count(self) -> int:
        return self._conn().execute("SELECT count(*) FROM chunk_staged_vectors").fetchone()[0]

    def switch_to_staged(self, embedder: str, dim: int) -> bool:
        with self._writing() as conn:
            staging.check_staging(conn, embedder, str(self.path))
            if conn.execute(staging.COUNT_UNSTAGED).fetchone()[0]:
                return False
            conn.execute("DELETE FROM chunk_vectors")
            conn.execute("INSERT INTO chunk_vectors(rowid, vector) SELECT rowid, vector FROM chunk_staged_vectors")
            staging.finish_switch(conn, embedder, dim)
            # No rowid is logged (BM25's text is unchanged); every process's vector matrix
            # compares this mark with its generation and reloads instead of catching up.
            bump_generation(conn)
            staging.set_meta(conn, "vectors_replaced", str(current_generation(conn)))
        return True

    def claim(self, name: str, worker: str, lease_s: float) -> tuple[str, float]:
        with self._writing() as conn:
            return staging.claim(conn, name, worker, lease_s)

    def release(self, name: str, worker: str) -> None:
        with self._writing() as conn:
            staging.release(conn, name, worker)

    def chunks_by_id(self, ids: Iterable[str]) -> list[Chunk]:
        ids = list(ids)
        if not ids:
            return []
        found = {row[0]: chunk_of(row) for row in rows_for_ids(
            self._conn(), f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE id IN ({{marks}})", ids)}
        return [found[i] for i in ids if i in found]

    def stored_chunks(self, doc_id: str) -> StoredChunks:
        with self.db.read() as conn:
            rows = conn.execute(f"SELECT {QUALIFIED_CHUNK_COLUMNS}, f.tokens, "
                                "v.vector FROM chunks c JOIN chunk_fts f ON f.rowid = c.rowid JOIN chunk_vectors v "
                                "ON v.rowid = c.rowid WHERE c.doc_id = ? ORDER BY c.ordinal", (doc_id,)).fetchall()
        vectors = (np.frombuffer(b"".join(r[10] for r in rows), dtype=np.float32).reshape(len(rows), -1) if rows
                   else np.empty((0, 0), dtype=np.float32))
        return StoredChunks([chunk_of(r[:9]) for r in rows], [r[9] for r in rows], vectors)

    def lexical_texts(self, chunk_ids: Iterable[str]) -> dict[str, str]:
        return dict(rows_for_ids(
            self._conn(), "SELECT c.id, f.tokens FROM chunks c JOIN chunk_fts f ON f.rowid = c.rowid "
            "WHERE c.id IN ({marks})", list(dict.fromkeys(chunk_ids))))

    # -- search ----------------------------------------------------------------------------------

    def lexical_search(self, terms: Sequence[str], k: int, tags: Sequence[str] | None = None) -> list[tuple[str, float]]:
        return self.lexical.search(terms, k, tags)

    def lexical_index_current(self) -> bool:
        """Whether the tantivy index reflects the store as it is now (False: FTS5 would answer)."""
        return self.lexical.current()

    def vector_search(self, vector: np.ndarray, k: int, tags: Sequence[str] | None = None) -> list[tuple[str, float]]:
        return self.vectors.search(vector, k, tags)

"""The PostgreSQL store: documents, chunks, BM25 and pgvector embeddings in one database that
several sekisho servers share (schema.py for the tables).

Writes: every write transaction first moves the generation on (`UPDATE meta ... RETURNING`), so
writers queue on that row: the same file replaced by two servers at once ends as one document (the
second finds the first's rows and replaces them). Chunk and token totals for BM25 change in the
same transaction.

Every write also logs the chunk rowids it touched under its generation (`chunk_changes`,
store/changelog.py): each server's tantivy index (`lexical_index`, store/lexical_index.py) replays
them to stay current, and answers BM25 searches whenever it is; PostgreSQL's own BM25 (lexical.py)
answers meanwhile.

Dense search: pgvector's HNSW index over the inner product (vectors are L2-normalised, so it is the
cosine), made on the first write when the embedder's dimension is known. The index is an
approximation; `ef_search` is raised with k (recall against exact search: docs/benchmarks.md, ## PostgreSQL).
A tag filter is applied to the index's candidates; when it leaves fewer than k, the visible
vectors are searched exactly instead, so a principal with few visible documents still gets them.

Re-embedding stages another embedder's vectors in `chunk_staged_vectors` (store/staging.py); the
switch replaces the live vectors and rebuilds the HNSW index for the new dimension in one
transaction (searches wait for it: the index is dropped first, about 1 ms a vector to rebuild).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import numpy as np

from sekisho.db import DatabaseError, MigrationError
from sekisho.db.postgres import PgConnection, PostgresDatabase
from sekisho.store import staging
from sekisho.store.changelog import log_changes, next_generation
from sekisho.store.lexical_index import DerivedLexicalIndex
from sekisho.store.postgres.lexical import DatabaseChanges, Lexical, LexicalRow, lexical_row, term_deltas, terms_of
from sekisho.store.postgres.schema import STORE_MIGRATIONS
from sekisho.store.protocol import StoreError
from sekisho.store.records import Chunk, Document, StoredChunks, Unstaged
from sekisho.store.rows import (
    CHUNK_COLUMNS,
    DOC_COLUMNS,
    QUALIFIED_CHUNK_COLUMNS,
    checked_replacement,
    chunk_of,
    chunk_row,
    document_of,
    document_row,
    visible_doc_clause,
)

# HNSW candidates per search: at least this many, and twice k (pgvector returns at most
# ef_search rows from the index; its default of 40 would cut a top 100 short).
EF_SEARCH_FLOOR = 100
EF_SEARCH_MAX = 1000


class PostgresStore:
    """The `Store` protocol over a PostgreSQL database with pgvector. `.db` is its handle, shared
    with the service tables that live with the documents (ingest jobs). With `lexical_index`, a
    local folder, this process keeps a tantivy index of the chunks in `<lexical_index>/<store_id>/`
    (one subfolder per database, so two never share one) that answers BM25 searches when current."""

    def __init__(self, url: str, lexical_index: Path | None = None) -> None:
        try:
            self.db = PostgresDatabase(url)
        except DatabaseError as exc:
            raise StoreError(str(exc)) from None
        self.where = self.db.where
        try:
            STORE_MIGRATIONS.apply(self.db)
        except MigrationError as exc:
            self.db.close()
            if "store migration failed" in str(exc) and "vector" in str(exc):
                reason = str(exc).split("store migration failed: ", 1)[-1]
                raise StoreError(f"{self.where}: pgvector is missing and cannot be created here ({reason}); install "
                                 "pgvector 0.5 or newer and run CREATE EXTENSION vector as a superuser") from None
            raise StoreError(str(exc)) from None
        from pgvector.psycopg.vector import register_vector_info
        from psycopg.types import TypeInfo

        with self.db.read() as conn:
            self._vector_type = TypeInfo.fetch(conn.raw, "vector")
        self._register = register_vector_info
        self.lexical = Lexical()
        self._bulk = False  # inside bulk_load
        store_id = self.get_meta("store_id") or ""
        # Caught up in the background: a rebuild reads every chunk over the network (seconds at
        # 100k chunks), and PostgreSQL answers meanwhile.
        self.lexical_index = (DerivedLexicalIndex(lexical_index / store_id, store_id, DatabaseChanges(self.db),
                                                  fallback="PostgreSQL", background=True)
                              if lexical_index is not None else None)

    @contextmanager
    def _vectors(self, transaction: AbstractContextManager[PgConnection]) -> Iterator[PgConnection]:
        """`transaction` with numpy arrays read and written as pgvector vectors (binary)."""
        with transaction as conn:
            self._register(conn.raw, self._vector_type)
            yield conn

    def close(self) -> None:
        if self.lexical_index is not None:
            self.lexical_index.close()
        self.db.close()

    # -- meta ------------------------------------------------------------------------------------

    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    def get_meta(self, key: str) -> str | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.db.write() as conn:
            conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
                         "excluded.value", (key, value))

    # -- documents -------------------------------------------------------------------------------

    def document_by_path(self, path: str) -> Document | None:
        with self.db.read() as conn:
            row = conn.execute(f"SELECT {DOC_COLUMNS} FROM documents WHERE path = ?", (path,)).fetchone()
        return document_of(row) if row else None

    def document_by_id(self, doc_id: str) -> Document | None:
        with self.db.read() as conn:
            row = conn.execute(f"SELECT {DOC_COLUMNS} FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return document_of(row) if row else None

    def document_titles(self, doc_ids: Iterable[str]) -> dict[str, str]:
        ids = list(dict.fromkeys(doc_ids))
        if not ids:
            return {}
        with self.db.read() as conn:
            return dict(conn.execute("SELECT id, title FROM documents WHERE id = ANY(?)", (ids,)).fetchall())

    def documents(self) -> list[Document]:
        with self.db.read() as conn:
            return [document_of(r) for r in conn.execute(f"SELECT {DOC_COLUMNS} FROM documents ORDER BY path")]

    def chunk_count(self) -> int:
        return int(self.get_meta("chunks") or 0)

    def replace_document(self, document: Document, chunks: Sequence[Chunk], lexical_texts: Sequence[str],
                         vectors: np.ndarray, embedder: str | None = None) -> None:
        vectors = checked_replacement(document, chunks, lexical_texts, vectors)
        lexical = [lexical_row(text) for text in lexical_texts]
        with self._vectors(self.db.write()) as conn:
            generation = self._bump(conn)
            if self._bulk:
                conn.execute("SET LOCAL synchronous_commit = off")
            removed = self._delete_rows(conn, document.id)
            # A different id may already own this path: the path is the user's handle on a
            # document, so the newcomer replaces it.
            old = conn.execute("SELECT id FROM documents WHERE path = ?", (document.path,)).fetchone()
            if old:
                removed += self._delete_rows(conn, old[0])
            if embedder is not None:
                staging.record_embedder(conn, embedder, vectors.shape[1], self.where)
            self._count_terms(conn, term_deltas(lexical, [tokens for _, tokens in removed]))
            conn.execute(f"INSERT INTO documents({DOC_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         document_row(document))
            conn.executemany("INSERT INTO document_tags(doc_id, tag) VALUES (?, ?)",
                             [(document.id, tag) for tag in dict.fromkeys(document.tags)])
            added = self._insert_chunks(conn, document, chunks, lexical_texts, lexical, vectors) if chunks else []
            log_changes(conn, generation, [rowid for rowid, _ in removed] + added)

    def _insert_chunks(self, conn: PgConnection, document: Document, chunks: Sequence[Chunk],
                       lexical_texts: Sequence[str], lexical: list[LexicalRow], vectors: np.ndarray) -> list[int]:
        """A document's chunks with their lexical rows and vectors; returns their rowids."""
        conn.executemany(f"INSERT INTO chunks({CHUNK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [chunk_row(c) for c in chunks])
        rowids = dict(conn.execute("SELECT id, rowid FROM chunks WHERE doc_id = ?", (document.id,)).fetchall())
        conn.executemany("INSERT INTO chunk_lexical(rowid, tokens, length, tsv) VALUES (?, ?, ?, ?::tsvector)",
                         [(rowids[c.id], text, row.length, row.tsv)
                          for c, text, row in zip(chunks, lexical_texts, lexical, strict=True)])
        self._ensure_vector_index(conn, vectors.shape[1])
        conn.executemany("INSERT INTO chunk_vectors(rowid, doc_id, embedding) VALUES (?, ?, ?)",
                         [(rowids[c.id], document.id, v) for c, v in zip(chunks, vectors, strict=True)])
        self._count(conn, len(chunks), sum(row.length for row in lexical))
        return list(rowids.values())

    def reindex_lexical(self, lexical_of: Callable[[Document, list[Chunk]], list[str]], scheme: str) -> int:
        """Every chunk's BM25 text rewritten with `lexical_of(document, its chunks)` and `scheme`
        recorded as 'lexical_scheme', in one transaction (vectors untouched)."""
        rewritten = tokens = 0
        with self._vectors(self.db.write()) as conn:
            log_changes(conn, self._bump(conn), lexical_rebuild=True)
            conn.execute("DELETE FROM term_stats")
            for document in [document_of(r) for r in conn.execute(f"SELECT {DOC_COLUMNS} FROM documents").fetchall()]:
                rows = conn.execute(f"SELECT rowid, {CHUNK_COLUMNS} FROM chunks WHERE doc_id = ? ORDER BY ordinal",
                                    (document.id,)).fetchall()
                texts = lexical_of(document, [chunk_of(r[1:]) for r in rows])
                built = [lexical_row(t) for t in texts]
                conn.executemany("UPDATE chunk_lexical SET tokens = ?, length = ?, tsv = ?::tsvector WHERE rowid = ?",
                                 [(t, row.length, row.tsv, r[0]) for r, t, row in zip(rows, texts, built, strict=True)])
                self._count_terms(conn, term_deltas(built, ()))
                rewritten += len(rows)
                tokens += sum(row.length for row in built)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'tokens'", (str(tokens),))
            conn.execute("INSERT INTO meta(key, value) VALUES ('lexical_scheme', ?) ON CONFLICT (key) DO UPDATE "
                         "SET value = excluded.value", (scheme,))
        return rewritten

    def delete_document(self, doc_id: str) -> None:
        with self._vectors(self.db.write()) as conn:
            generation = self._bump(conn)
            removed = self._delete_rows(conn, doc_id)
            self._count_terms(conn, term_deltas((), [tokens for _, tokens in removed]))
            log_changes(conn, generation, [rowid for rowid, _ in removed])

    def _bump(self, conn: PgConnection) -> int:
        """Move the generation on, first thing: the row lock queues every other writer of this store
        until this transaction ends. Returns the new generation, under which the write logs the
        chunk rowids it touches (store/changelog.py)."""
        return next_generation(conn)

    @staticmethod
    def _count(conn: PgConnection, chunks: int, tokens: int) -> None:
        conn.execute("UPDATE meta SET value = (value::bigint + ?)::text WHERE key = 'chunks'", (chunks,))
        conn.execute("UPDATE meta SET value = (value::bigint + ?)::text WHERE key = 'tokens'", (tokens,))

    def _delete_rows(self, conn: PgConnection, doc_id: str) -> list[tuple[int, str]]:
        """Delete a document and everything indexed for it (the chunks' rows go by cascade);
        returns its chunks' rowids and token texts, whose terms no longer count."""
        rows = conn.execute("SELECT c.rowid, l.tokens, l.length FROM chunks c JOIN chunk_lexical l "
                            "ON l.rowid = c.rowid WHERE c.doc_id = ?", (doc_id,)).fetchall()
        if conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,)).rowcount:
            self._count(conn, -len(rows), -sum(length for *_, length in rows))
        return [(rowid, tokens) for rowid, tokens, _ in rows]

    @staticmethod
    def _count_terms(conn: PgConnection, deltas: dict[str, int]) -> None:
        if deltas:
            conn.execute("INSERT INTO term_stats(term, chunks) SELECT * FROM unnest(?::text[], ?::int[]) "
                         "ON CONFLICT (term) DO UPDATE SET chunks = term_stats.chunks + excluded.chunks",
                         (list(deltas), list(deltas.values())))

    def _ensure_vector_index(self, conn: PgConnection, dim: int) -> None:
        """Record the dimension and make the HNSW index on the first write; refuse vectors of
        another dimension after it (the embedder changed: re-index)."""
        row = conn.execute("SELECT value FROM meta WHERE key = 'vector_dim'").fetchone()
        if row is not None:
            if int(row[0]) == dim:
                return
            if conn.execute("SELECT 1 FROM chunk_vectors LIMIT 1").fetchone() is not None:
                raise StoreError(f"{self.where}: vectors of {dim} dimensions, the store holds {row[0]} "
                                 "(the embedder changed: `sekisho reembed`)")
            # Every document was deleted: the emptied store takes the new embedder's dimension,
            # and its HNSW index (built for the old one) is made again.
            conn.execute("DROP INDEX IF EXISTS chunk_vectors_hnsw")
            conn.execute("DELETE FROM meta WHERE key = 'vector_dim'")
        conn.execute("INSERT INTO meta(key, value) VALUES ('vector_dim', ?)", (str(dim),))
        if conn.execute("SELECT 1 FROM meta WHERE key = 'vector_index_deferred'").fetchone() is None:
            self._create_vector_index(conn, dim)

    # -- re-embedding (store/staging.py) -----------------------------------------------------------

    def begin_staging(self, embedder: str) -> None:
        with self.db.write() as conn:
            self._bump(conn)
            staging.begin_staging(conn, embedder)

    def unstaged_chunks(self, limit: int, after: int = 0) -> Unstaged:
        with self.db.read() as conn:
            generation = int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
            rows = conn.execute(staging.UNSTAGED, (after, limit)).fetchall()
        return Unstaged(generation, [r[0] for r in rows], [chunk_of(r[1:10]) for r in rows], [r[10] for r in rows])

    def stage_vectors(self, embedder: str, batch: Unstaged, vectors: np.ndarray) -> int:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._vectors(self.db.write()) as conn:
            # Queued behind writers like a write (without moving the generation: nothing searched
            # changes), so a chunk deleted meanwhile is seen gone. Rows are never reused here.
            conn.execute("SELECT value FROM meta WHERE key = 'generation' FOR UPDATE")
            staging.check_staging(conn, embedder, self.where)
            present = {r[0] for r in conn.execute("SELECT rowid FROM chunks WHERE rowid = ANY(?)", (batch.keys,))}
            rows = [(key, vector) for key, vector in zip(batch.keys, vectors, strict=True) if key in present]
            conn.executemany("INSERT INTO chunk_staged_vectors(rowid, embedding) VALUES (?, ?) ON CONFLICT (rowid) "
                             "DO UPDATE SET embedding = excluded.embedding", rows)
        return len(rows)

    def staged_count(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute("SELECT count(*) FROM chunk_staged_vectors").fetchone()[0])

    def switch_to_staged(self, embedder: str, dim: int) -> bool:
        with self.db.write() as conn:
            self._bump(conn)
            staging.check_staging(conn, embedder, self.where)
            if conn.execute(staging.COUNT_UNSTAGED).fetchone()[0]:
                return False
            # The index is on the column cast to the old dimension: dropped before vectors of
            # another dimension go in, made again over the new ones before the commit. TRUNCATE,
            # not DELETE: an index build still reads the rows this transaction deleted (older
            # snapshots may see them), and the old dimension's cannot be cast to the new one.
            # A search whose snapshot predates the switch then finds no vectors, once.
            conn.execute("DROP INDEX IF EXISTS chunk_vectors_hnsw")
            conn.execute("TRUNCATE chunk_vectors")
            conn.execute("INSERT INTO chunk_vectors(rowid, doc_id, embedding) SELECT s.rowid, c.doc_id, s.embedding "
                         "FROM chunk_staged_vectors s JOIN chunks c ON c.rowid = s.rowid")
            staging.finish_switch(conn, embedder, dim)
            staging.set_meta(conn, "vector_dim", str(dim))
            if conn.execute("SELECT 1 FROM meta WHERE key = 'vector_index_deferred'").fetchone() is None:
                conn.execute("SET LOCAL maintenance_work_mem = '1GB'")
                self._create_vector_index(conn, dim)
        return True

    def claim(self, name: str, worker: str, lease_s: float) -> tuple[str, float]:
        with self.db.write() as conn:
            return staging.claim(conn, name, worker, lease_s)

    def release(self, name: str, worker: str) -> None:
        with self.db.write() as conn:
            staging.release(conn, name, worker)

    @staticmethod
    def _create_vector_index(conn: PgConnection, dim: int) -> None:
        # The column is untyped (the dimension was unknown when the table was made): the index is
        # on the column cast to this dimension, and searches order by the same expression.
        conn.execute(f"CREATE INDEX IF NOT EXISTS chunk_vectors_hnsw ON chunk_vectors USING hnsw "
                     f"((embedding::vector({dim})) vector_ip_ops)")

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Loading many documents at once (sekisho migrate): the HNSW index is dropped and built
        once over every vector when the block ends, and the writes meanwhile commit without waiting
        for the disk. Inserting into the index costs 7-17 ms a vector on two cores, building it
        about 1 ms; a flush per document cost more than the document's rows
        (docs/benchmarks.md, ## PostgreSQL). The final build commits durably, and with it every write
        before it (the write-ahead log is one sequence); a load that dies half-way is rerun.
        Searches meanwhile are exact."""
        with self.db.write() as conn:
            conn.execute("DROP INDEX IF EXISTS chunk_vectors_hnsw")
            conn.execute("INSERT INTO meta(key, value) VALUES ('vector_index_deferred', '1') ON CONFLICT (key) "
                         "DO NOTHING")
        self._bulk = True
        try:
            yield
        finally:
            self._bulk = False
            with self.db.write() as conn:
                conn.execute("DELETE FROM meta WHERE key = 'vector_index_deferred'")
                row = conn.execute("SELECT value FROM meta WHERE key = 'vector_dim'").fetchone()
                if row is not None:
                    # The graph is built in memory when it fits (about 2.5x the vectors' size).
                    conn.execute("SET LOCAL maintenance_work_mem = '1GB'")
                    self._create_vector_index(conn, int(row[0]))

    def chunks_by_id(self, ids: Iterable[str]) -> list[Chunk]:
        ids = list(ids)
        if not ids:
            return []
        with self.db.read() as conn:
            found = {r[0]: chunk_of(r) for r in conn.execute(
                f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE id = ANY(?)", (ids,))}
        return [found[i] for i in ids if i in found]

    def lexical_texts(self, chunk_ids: Iterable[str]) -> dict[str, str]:
        ids = list(dict.fromkeys(chunk_ids))
        if not ids:
            return {}
        with self.db.read() as conn:
            return dict(conn.execute("SELECT c.id, l.tokens FROM chunks c JOIN chunk_lexical l ON l.rowid = c.rowid "
                                     "WHERE c.id = ANY(?)", (ids,)).fetchall())

    def stored_chunks(self, doc_id: str) -> StoredChunks:
        with self._vectors(self.db.read()) as conn:
            rows = conn.execute(f"SELECT {QUALIFIED_CHUNK_COLUMNS}, l.tokens, v.embedding FROM chunks c JOIN chunk_lexical l ON l.rowid = c.rowid "
                                "JOIN chunk_vectors v ON v.rowid = c.rowid WHERE c.doc_id = ? ORDER BY c.ordinal",
                                (doc_id,)).fetchall()
        vectors = (np.stack([np.asarray(r[10].to_numpy(), dtype=np.float32) for r in rows]) if rows
                   else np.empty((0, 0), dtype=np.float32))
        return StoredChunks([chunk_of(r[:9]) for r in rows], [r[9] for r in rows], vectors)

    # -- search ----------------------------------------------------------------------------------

    def lexical_search(self, terms: Sequence[str], k: int, tags: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """BM25 from this server's tantivy index when it reflects the database's generation (every
        query term walked, skipping what cannot rank), else from PostgreSQL (the rarer terms only).
        Both over the same lower-cased tokens with k1 1.2, b 0.75 and tantivy's idf."""
        unique = list(dict.fromkeys(terms_of(" ".join(terms))))
        found = (self.lexical_index.search(unique, k, tags)
                 if self.lexical_index is not None and unique and k > 0 else None)
        if found is not None:
            return self._chunk_ids(found)
        visible = None if tags is None or "*" in tags else visible_doc_clause(tags)
        with self.db.read() as conn:
            stats = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('chunks', 'tokens')").fetchall())
            return self.lexical.search(conn, terms, k, visible, int(stats["chunks"]), int(stats["tokens"]))

    def _chunk_ids(self, found: list[tuple[int, float]]) -> list[tuple[str, float]]:
        """(rowid, score) as (chunk id, score); a chunk deleted since the index's generation is left out."""
        if not found:
            return []
        with self.db.read() as conn:
            ids = dict(conn.execute("SELECT rowid, id FROM chunks WHERE rowid = ANY(?)",
                                    ([rowid for rowid, _ in found],)).fetchall())
        return [(ids[rowid], score) for rowid, score in found if rowid in ids]

    def lexical_index_current(self) -> bool:
        """Whether this server's tantivy index reflects the database now (False: PostgreSQL answers)."""
        return self.lexical_index is not None and self.lexical_index.current()

    def vector_search(self, vector: np.ndarray, k: int, tags: Sequence[str] | None = None) -> list[tuple[str, float]]:
        if k <= 0:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._vectors(self.db.read()) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'vector_dim'").fetchone()
            if row is None:
                return []
            dim = int(row[0])
            if query.shape[0] != dim:
                raise StoreError(f"{self.where}: query vector has {query.shape[0]} dimensions, stored vectors have "
                                 f"{dim} (the embedder changed: re-index)")
            conn.execute("SELECT set_config('hnsw.ef_search', ?, true)",
                         (str(min(EF_SEARCH_MAX, max(EF_SEARCH_FLOOR, 2 * k))),))
            restricted = tags is not None and "*" not in tags
            visible = visible_doc_clause(tags) if restricted else None
            distance = f"v.embedding::vector({dim}) <#> ?::vector({dim})"
            # The index yields its ef_search nearest; a tag filter then keeps the visible ones.
            found = self._nearest(conn, distance, visible, query, k)
            if restricted and len(found) < k:
                conn.execute("SET LOCAL enable_indexscan = off")  # exact: every visible vector
                found = self._nearest(conn, distance, visible, query, k)
        return found

    @staticmethod
    def _nearest(conn: PgConnection, distance: str, visible: tuple[str, list[str]] | None, query: np.ndarray,
                 k: int) -> list[tuple[str, float]]:
        clause, params = visible or ("", [])
        join = f"JOIN documents ON documents.id = v.doc_id WHERE {clause}" if clause else ""
        rows = conn.execute(
            f"SELECT c.id, -({distance}) AS similarity FROM chunk_vectors v JOIN chunks c ON c.rowid = v.rowid "
            f"{join} ORDER BY {distance} LIMIT ?", [query, *params, query, k]).fetchall()
        return [(cid, float(similarity)) for cid, similarity in rows]

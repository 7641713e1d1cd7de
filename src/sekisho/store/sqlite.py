"""The embedded SQLite store: one file holding documents, chunks, a BM25 index and embeddings.

Layout
- `documents` and `chunks`: the records, with the original text kept for display and citation.
- `document_tags`: one row per (document, access tag), so tag filters are an indexed lookup.
- `chunk_fts`: an FTS5 table over pre-tokenised text (tokens joined by spaces). The morphological
  analysis happens in Python (retrieval/tokenize.py); FTS5 only splits on the spaces and ranks with
  its built-in bm25(). Living in the same database means the lexical index commits in the same
  transaction as the chunks it indexes. Searches normally run on a tantivy index derived from it
  (`<file>.lexical/`, store/lexical_index.py); FTS5 answers whenever that index is not current.
- `chunk_vectors`: one float32 blob per chunk. Dense search is a brute-force dot product over a
  float32 matrix loaded once per process (numpy has no fast float16 product: 13x slower than
  float32 at 100k x 384; docs/benchmarks.md), computed without BLAS (see `dense_scores`).
- `chunk_changes`: the chunk rowids each write touched, by generation (a counter every write
  moves). The tantivy index and the vector matrix catch up on it instead of being rebuilt.

Connections and threads
- SQLite connections are not shared between threads: each thread that touches the store gets its
  own connection (thread-local), opened lazily. WAL mode lets those readers run while one writer
  commits. Writes are serialised by a process-wide lock and run as `BEGIN IMMEDIATE` transactions,
  so a second writer (another process) waits on the busy timeout instead of failing half-way.
- The in-memory vector matrix is shared by all threads and swapped atomically under a lock.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sekisho.errors import SekishoError
from sekisho.store.lexical_index import IndexBusy, IndexState, LexicalIndexError, TantivyIndex
from sekisho.store.records import Chunk, Document, Location

# Each entry upgrades the schema from version i to i + 1. Append, never edit a shipped entry.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE documents (
        id TEXT PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        media_type TEXT NOT NULL,
        encoding TEXT,
        text TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        ingested_at REAL NOT NULL DEFAULT 0
    );
    CREATE TABLE document_tags (
        doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        PRIMARY KEY (doc_id, tag)
    );
    CREATE INDEX document_tags_by_tag ON document_tags(tag);
    CREATE TABLE chunks (
        rowid INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL,
        text TEXT NOT NULL,
        norm_text TEXT NOT NULL,
        start INTEGER NOT NULL,
        end INTEGER NOT NULL,
        page INTEGER,
        heading TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX chunks_by_doc ON chunks(doc_id);
    -- Tokens arrive pre-split by the morphological analyser and joined by single spaces; the
    -- unicode61 tokenizer then only splits on those spaces (and on punctuation, which the analyser
    -- has already dropped). Diacritic folding applies to Latin letters only, so kana are untouched.
    CREATE VIRTUAL TABLE chunk_fts USING fts5(tokens, tokenize = 'unicode61');
    CREATE TABLE chunk_vectors (
        rowid INTEGER PRIMARY KEY,
        vector BLOB NOT NULL
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO meta(key, value) VALUES ('generation', '0');
    """,
    # Per-term document counts, read by lexical_search to leave out terms too common to rank.
    """
    CREATE VIRTUAL TABLE chunk_fts_vocab USING fts5vocab(chunk_fts, 'row');
    """,
    # What the derived indexes need to catch up instead of reloading (the tantivy index beside
    # the file, the in-memory vector matrix): which store this is, and the chunk rowids each
    # generation touched. Writes before this migration were not logged, so anything derived
    # from an older generation is rebuilt.
    """
    CREATE TABLE chunk_changes (
        generation INTEGER NOT NULL,
        rowid INTEGER NOT NULL
    );
    CREATE INDEX chunk_changes_by_generation ON chunk_changes(generation);
    INSERT INTO meta(key, value) VALUES ('store_id', lower(hex(randomblob(16))));
    INSERT INTO meta(key, value) SELECT 'changes_floor', value FROM meta WHERE key = 'generation';
    """,
    # Documents ingested before this remember no recipe: their files are processed again on the
    # next ingest, with whatever extraction and chunking sekisho has by then.
    """
    ALTER TABLE documents ADD COLUMN recipe TEXT NOT NULL DEFAULT '';
    """,
]


# See SQLiteStore._ranking_terms. Chosen by bench/retrieval_scale.py and bench/retrieval_jsquad.py
# (docs/benchmarks.md, ## Retrieval).
POSTINGS_BUDGET = 40_000
# How many generations of chunk_changes are kept: whatever is derived from an older generation
# is rebuilt instead of caught up.
CHANGE_LOG_GENERATIONS = 10_000
# The chunk rowids written after a generation (bound to ?): what both derived indexes replay.
_CHANGED_SINCE = "SELECT DISTINCT rowid FROM chunk_changes WHERE generation > ?"


log = logging.getLogger("sekisho.store")


class StoreError(SekishoError):
    """The store file cannot be opened or used; the message names the file and the reason."""


# A matrix caught up by appending blocks and marking rows dead is copied into one block again once
# dead rows or blocks pile up (a search pays a product per block and computes scores for dead rows).
_MAX_VECTOR_BLOCKS = 16
_MAX_DEAD_SHARE = 0.2

# The dense product is memory-bound: row slices on a few threads read the matrix about as fast as
# BLAS does. Slices smaller than this cost more in hand-offs than they save.
_PRODUCT_THREADS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
_PRODUCT_SLICE_ROWS = 16_384
_product_pool = ThreadPoolExecutor(max_workers=max(1, _PRODUCT_THREADS - 1), thread_name_prefix="sekisho-dense")


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

    others = [_product_pool.submit(part, i) for i in range(1, parts)]
    part(0)  # the calling thread takes a slice too: one hand-off fewer (5.2 against 6.6 ms at 100k)
    for future in others:
        future.result()
    return out


@dataclass(frozen=True)
class _VectorCache:
    """Every stored vector in memory. Rows live in `blocks` (float32, L2-normalised, in order);
    `alive` marks the rows still in the store once writes have been replayed (None: all). The
    arrays are never modified: a newer generation is a new _VectorCache sharing the old blocks."""

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

    def compacted(self) -> _VectorCache:
        """One block of the live rows: what a full reload would give, without reading SQLite."""
        keep = self.alive if self.alive is not None else np.ones(self.rows, dtype=bool)
        matrix = np.concatenate(self.blocks)[keep] if len(self.blocks) > 1 else self.blocks[0][keep]
        return _VectorCache(self.generation, self.rowids[keep], (matrix,), self.doc_index[keep], self.doc_ids)


def _rows_for_ids(conn: sqlite3.Connection, query: str, ids: Sequence[object]) -> Iterator[tuple]:
    """The rows of `query` for all `ids`, bound to its `{marks}` IN list in batches that stay
    under SQLite's bound-parameter limit."""
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        yield from conn.execute(query.format(marks=",".join("?" * len(part))), part)


def _tags_by_document(conn: sqlite3.Connection, doc_ids: set[str] | None) -> dict[str, list[str]]:
    """doc id -> its access tags, for `doc_ids` only (None: every document). A catch-up after a
    small write reads the tags of the documents it touched, not the whole table."""
    rows = (conn.execute("SELECT doc_id, tag FROM document_tags") if doc_ids is None else
            _rows_for_ids(conn, "SELECT doc_id, tag FROM document_tags WHERE doc_id IN ({marks})", sorted(doc_ids)))
    tags: dict[str, list[str]] = {}
    for doc_id, tag in rows:
        tags.setdefault(doc_id, []).append(tag)
    return tags


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; WAL keeps it consistent
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        current = row[0] if row else 0
        if row is None:
            conn.execute("INSERT INTO schema_version(version) VALUES (0)")
        if current > len(MIGRATIONS):
            raise StoreError(
                f"{path}: schema version {current} is newer than this sekisho understands "
                f"({len(MIGRATIONS)}); upgrade sekisho"
            )
        for version in range(current, len(MIGRATIONS)):
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = ?", (version + 1,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """Split a migration into statements so each runs inside our explicit transaction
    (executescript would commit first)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _match_expression(terms: Sequence[str]) -> str:
    """An FTS5 MATCH expression that ORs the terms, each quoted as a string literal so user input
    (quotes, *, -, AND/OR/NOT/NEAR, parentheses, colons) can never be read as query syntax."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def _visible_doc_clause(tags: Sequence[str] | None) -> tuple[str, list[str]]:
    """SQL condition on `documents.id` for what a principal with these tags may see.

    None or a tag list containing "*" sees everything; () sees only untagged documents;
    otherwise untagged documents plus those carrying any of the tags."""
    if tags is None or "*" in tags:
        return "1", []
    untagged = "NOT EXISTS (SELECT 1 FROM document_tags t WHERE t.doc_id = documents.id)"
    if not tags:
        return untagged, []
    marks = ",".join("?" * len(tags))
    tagged = f"EXISTS (SELECT 1 FROM document_tags t WHERE t.doc_id = documents.id AND t.tag IN ({marks}))"
    return f"({untagged} OR {tagged})", list(tags)


def _document(row: sqlite3.Row | tuple) -> Document:
    id_, path, title, content_hash, media_type, encoding, text, tags, ingested_at, recipe = row
    return Document(
        id=id_, path=path, title=title, content_hash=content_hash, media_type=media_type,
        encoding=encoding, text=text, tags=tuple(json.loads(tags)), ingested_at=ingested_at, recipe=recipe,
    )


def _chunk(row: tuple) -> Chunk:
    id_, doc_id, ordinal, text, norm_text, start, end, page, heading = row
    return Chunk(
        id=id_, doc_id=doc_id, ordinal=ordinal, text=text, norm_text=norm_text,
        location=Location(start=start, end=end, page=page, heading=tuple(json.loads(heading))),
    )


_DOC_COLUMNS = "id, path, title, content_hash, media_type, encoding, text, tags, ingested_at, recipe"
_CHUNK_COLUMNS = "id, doc_id, ordinal, text, norm_text, start, end, page, heading"


class SQLiteStore:
    """The `Store` protocol over one SQLite file. See the module docstring for threading."""

    def __init__(self, path: str | Path, *, lexical_index: bool = True):
        """`lexical_index=False` leaves BM25 to FTS5 alone (no tantivy index beside the file)."""
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            raise StoreError(f"{self.path}: folder {self.path.parent} does not exist")
        self._local = threading.local()
        self._all_connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._vector_lock = threading.Lock()
        self._vectors: _VectorCache | None = None
        # How much of the index lexical_search may walk per query (see _ranking_terms).
        self.postings_budget: float = POSTINGS_BUDGET
        self._term_lock = threading.Lock()
        self._term_cache: dict[str, int] = {}
        self._term_cache_generation = -1
        self._closed = False
        self._sync_lock = threading.Lock()
        self._lexical_index: TantivyIndex | None = None
        try:
            _migrate(self._conn(), self.path)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"{self.path}: cannot open as a sekisho store: {exc}") from None
        self._store_id = self.get_meta("store_id") or ""
        if lexical_index:
            try:
                self._lexical_index = TantivyIndex(self.path.with_name(self.path.name + ".lexical"))
            except LexicalIndexError as exc:
                log.warning("%s; searching with FTS5 only", exc)

    # -- connections -----------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"{self.path}: store is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
            with self._connections_lock:
                self._all_connections.append(conn)
        return conn

    def close(self) -> None:
        if not self._closed:
            try:
                self._sync_lexical_index()  # what this process wrote is indexed before it goes
            except sqlite3.Error as exc:  # the next search catches up instead; closing must not fail
                log.warning("%s: lexical index not caught up at close (%s)", self.path, exc)
        self._closed = True
        with self._connections_lock:
            for conn in self._all_connections:
                conn.close()
            self._all_connections.clear()
        self._local = threading.local()
        self._vectors = None
        self._lexical_index = None

    def schema_version(self) -> int:
        return self._conn().execute("SELECT version FROM schema_version").fetchone()[0]

    def generation(self) -> int:
        """A counter bumped by every write; caches compare it to know when to reload."""
        return int(self._conn().execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    def get_meta(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._write_lock:
            self._conn().execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- documents -------------------------------------------------------------------------------

    def document_by_path(self, path: str) -> Document | None:
        row = self._conn().execute(f"SELECT {_DOC_COLUMNS} FROM documents WHERE path = ?", (path,)).fetchone()
        return _document(row) if row else None

    def document_by_id(self, doc_id: str) -> Document | None:
        row = self._conn().execute(f"SELECT {_DOC_COLUMNS} FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return _document(row) if row else None

    def document_titles(self, doc_ids: Iterable[str]) -> dict[str, str]:
        """Titles without loading the documents' text (search re-scoring needs only these)."""
        ids = list(dict.fromkeys(doc_ids))
        marks = ",".join("?" * len(ids))
        return dict(self._conn().execute(f"SELECT id, title FROM documents WHERE id IN ({marks})", ids)) if ids else {}

    def documents(self) -> list[Document]:
        rows = self._conn().execute(f"SELECT {_DOC_COLUMNS} FROM documents ORDER BY path").fetchall()
        return [_document(r) for r in rows]

    def chunk_count(self) -> int:
        return self._conn().execute("SELECT count(*) FROM chunks").fetchone()[0]

    def replace_document(
        self,
        document: Document,
        chunks: Sequence[Chunk],
        lexical_texts: Sequence[str],
        vectors: np.ndarray,
    ) -> None:
        if len(lexical_texts) != len(chunks) or len(vectors) != len(chunks):
            raise StoreError(
                f"{document.path}: {len(chunks)} chunks but {len(lexical_texts)} lexical texts "
                f"and {len(vectors)} vectors"
            )
        if any(c.doc_id != document.id for c in chunks):
            raise StoreError(f"{document.path}: a chunk belongs to another document")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._writing() as conn:
            changed = self._delete_rows(conn, document.id)
            # A different id may already own this path (e.g. the id scheme changed): the path is
            # the user's handle on a document, so the newcomer replaces it.
            old = conn.execute("SELECT id FROM documents WHERE path = ?", (document.path,)).fetchone()
            if old:
                changed += self._delete_rows(conn, old[0])
            conn.execute(
                f"INSERT INTO documents({_DOC_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (document.id, document.path, document.title, document.content_hash, document.media_type,
                 document.encoding, document.text, json.dumps(list(document.tags), ensure_ascii=False),
                 document.ingested_at, document.recipe),
            )
            conn.executemany(
                "INSERT INTO document_tags(doc_id, tag) VALUES (?, ?)",
                [(document.id, tag) for tag in dict.fromkeys(document.tags)],
            )
            for chunk, lexical, vector in zip(chunks, lexical_texts, vectors, strict=True):
                loc = chunk.location
                cur = conn.execute(
                    "INSERT INTO chunks(id, doc_id, ordinal, text, norm_text, start, end, page, heading) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (chunk.id, chunk.doc_id, chunk.ordinal, chunk.text, chunk.norm_text, loc.start,
                     loc.end, loc.page, json.dumps(list(loc.heading), ensure_ascii=False)),
                )
                rowid = cur.lastrowid
                conn.execute("INSERT INTO chunk_fts(rowid, tokens) VALUES (?, ?)", (rowid, lexical))
                conn.execute("INSERT INTO chunk_vectors(rowid, vector) VALUES (?, ?)", (rowid, vector.tobytes()))
                changed.append(rowid)
            self._bump_generation(conn, changed)

    def reindex_lexical(self, lexical_of: Callable[[Document, list[Chunk]], list[str]], scheme: str) -> int:
        """Rewrite every chunk's lexical text with `lexical_of(document, its chunks)` and record
        `scheme` under the meta key 'lexical_scheme', in one transaction: a store whose index was
        built by an older analyser moves forward without re-embedding. Returns the chunks rewritten."""
        with self._writing() as conn:
            rewritten = 0
            docs = [_document(r) for r in conn.execute(f"SELECT {_DOC_COLUMNS} FROM documents").fetchall()]
            for document in docs:
                rows = conn.execute(
                    f"SELECT rowid, {_CHUNK_COLUMNS} FROM chunks WHERE doc_id = ? ORDER BY ordinal",
                    (document.id,),
                ).fetchall()
                texts = lexical_of(document, [_chunk(r[1:]) for r in rows])
                conn.executemany("DELETE FROM chunk_fts WHERE rowid = ?", [(r[0],) for r in rows])
                conn.executemany("INSERT INTO chunk_fts(rowid, tokens) VALUES (?, ?)",
                                 [(r[0], t) for r, t in zip(rows, texts, strict=True)])
                rewritten += len(rows)
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('lexical_scheme', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (scheme,),
            )
            self._bump_generation(conn, lexical_rebuild=True)
        return rewritten

    def delete_document(self, doc_id: str) -> None:
        with self._writing() as conn:
            self._bump_generation(conn, self._delete_rows(conn, doc_id))

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: serialised in this process by the write lock and against other
        processes by BEGIN IMMEDIATE; all of it commits or none does.

        The tantivy index is not touched here: one tantivy commit costs about 20 ms, 15x a
        five-chunk SQLite write (bench/lexical_engines.py), so a batch of writes is caught up
        once, by the next search or by close()."""
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _delete_rows(conn: sqlite3.Connection, doc_id: str) -> list[int]:
        """Delete a document and everything indexed for it; returns its chunks' rowids."""
        rowids = [r[0] for r in conn.execute("SELECT rowid FROM chunks WHERE doc_id = ?", (doc_id,))]
        conn.executemany("DELETE FROM chunk_fts WHERE rowid = ?", [(r,) for r in rowids])
        conn.executemany("DELETE FROM chunk_vectors WHERE rowid = ?", [(r,) for r in rowids])
        conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        conn.execute("DELETE FROM document_tags WHERE doc_id = ?", (doc_id,))
        conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        return rowids

    @staticmethod
    def _bump_generation(conn: sqlite3.Connection, changed_rowids: Sequence[int] = (), *,
                         lexical_rebuild: bool = False) -> None:
        """Move the generation on and log which chunk rowids it touched, so the tantivy index and
        the vector matrix can replay them; `lexical_rebuild` says every chunk's lexical text
        changed (both rebuild instead)."""
        generation = conn.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation' "
            "RETURNING CAST(value AS INTEGER)"
        ).fetchone()[0]
        if lexical_rebuild:
            conn.execute("DELETE FROM chunk_changes")
            floor = generation
        else:
            conn.executemany("INSERT INTO chunk_changes(generation, rowid) VALUES (?, ?)",
                             [(generation, r) for r in changed_rowids])
            floor = generation - CHANGE_LOG_GENERATIONS
            conn.execute("DELETE FROM chunk_changes WHERE generation <= ?", (floor,))
        conn.execute("UPDATE meta SET value = max(CAST(value AS INTEGER), ?) WHERE key = 'changes_floor'", (floor,))

    def chunks_by_id(self, ids: Iterable[str]) -> list[Chunk]:
        ids = list(ids)
        if not ids:
            return []
        found = {row[0]: _chunk(row) for row in _rows_for_ids(
            self._conn(), f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE id IN ({{marks}})", ids)}
        return [found[i] for i in ids if i in found]

    def lexical_texts(self, chunk_ids: Iterable[str]) -> dict[str, str]:
        return dict(_rows_for_ids(
            self._conn(), "SELECT c.id, f.tokens FROM chunks c JOIN chunk_fts f ON f.rowid = c.rowid "
            "WHERE c.id IN ({marks})", list(dict.fromkeys(chunk_ids))))

    # -- search ----------------------------------------------------------------------------------

    def lexical_search(self, terms: Sequence[str], k: int, tags: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """BM25 over the chunks' pre-tokenised text for any of `terms`, each matched literally as
        one token (case-folded); returns (chunk id, score), best first.

        The tantivy index answers when it reflects the store's current generation (catching up
        first if it can); otherwise FTS5 does, over the rarer terms only (`_ranking_terms`).
        Both rank by BM25 with k1 1.2 and b 0.75; their idf formulas differ slightly, so scores
        are comparable within one result list, not across engines."""
        unique = list(dict.fromkeys(t for t in terms if t.strip()))
        if k <= 0 or not unique:
            return []
        found = self._indexed_search(unique, k, tags)
        return found if found is not None else self._fts5_search(unique, k, tags)

    def lexical_index_current(self) -> bool:
        """Whether the tantivy index reflects the store as it is now (False: FTS5 would answer)."""
        index = self._lexical_index
        return index is not None and index.state() == IndexState(self._store_id, self.generation())

    def _indexed_search(self, terms: list[str], k: int, tags: Sequence[str] | None) -> list[tuple[str, float]] | None:
        """The tantivy index's answer, or None when it is off, lagging, or failing."""
        index = self._lexical_index
        if index is None:
            return None
        try:
            found = index.search(terms, k, tags, IndexState(self._store_id, self.generation()))
            if found is None and self._sync_lexical_index():
                found = index.search(terms, k, tags, IndexState(self._store_id, self.generation()))
        except (ValueError, OSError) as exc:
            self._give_up_lexical_index(exc)
            return None
        if found is None:
            return None
        ids = self._chunk_ids_for_rowids([rowid for rowid, _ in found])
        return [(ids[rowid], score) for rowid, score in found if rowid in ids]

    def _sync_lexical_index(self) -> bool:
        """Bring the tantivy index up to the store's current generation: replay the logged changes,
        or rebuild from chunk_fts when the log does not reach back to the index's generation or the
        index belongs to another store. Returns False when that cannot happen now (no index, or
        another writer holds it). Never raises: FTS5 answers meanwhile."""
        index = self._lexical_index
        if index is None or not self._sync_lock.acquire(blocking=False):
            return False
        try:
            with index.writing() as batch:
                current = index.state()
                conn = self._conn()
                conn.execute("BEGIN")  # one snapshot for the generation, the log and the rows
                try:
                    ours = current is not None and current.store_id == self._store_id
                    generation, changed = self._changes_since(conn, current.generation if ours else None)
                    target = IndexState(self._store_id, generation)
                    if current == target:
                        return True
                    if changed is None:
                        batch.clear()
                        rows = conn.execute("SELECT c.rowid, f.tokens, c.doc_id FROM chunk_fts f "
                                            "JOIN chunks c ON c.rowid = f.rowid")
                    else:
                        batch.delete(changed)
                        # CROSS JOIN fixes the order: left to itself, SQLite scanned all of
                        # chunk_fts (180 ms at 100k chunks) instead of looking up the changed rows.
                        rows = conn.execute(
                            f"SELECT c.rowid, f.tokens, c.doc_id FROM ({_CHANGED_SINCE}) l "
                            "CROSS JOIN chunks c ON c.rowid = l.rowid CROSS JOIN chunk_fts f ON f.rowid = l.rowid",
                            (current.generation,))
                    rows = rows.fetchall()
                    tags = _tags_by_document(conn, None if changed is None else {d for _, _, d in rows})
                    for rowid, tokens, doc_id in rows:
                        batch.add(rowid, tokens, tags.get(doc_id, ()))
                finally:
                    conn.execute("COMMIT")
                batch.commit(target)
            return True
        except IndexBusy:
            return False
        except (LexicalIndexError, ValueError, OSError) as exc:
            self._give_up_lexical_index(exc)
            return False
        finally:
            self._sync_lock.release()

    @staticmethod
    def _changes_since(conn: sqlite3.Connection, since: int | None) -> tuple[int, list[int] | None]:
        """Inside the caller's read transaction: the store's generation now, and the rowids of the
        chunks written after generation `since`; None instead of the rowids when the change log no
        longer reaches back that far (or `since` is None), so the caller must rebuild."""
        generation = int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
        floor = int(conn.execute("SELECT value FROM meta WHERE key = 'changes_floor'").fetchone()[0])
        if since is None or not floor <= since <= generation:
            return generation, None
        return generation, [r for (r,) in conn.execute(_CHANGED_SINCE, (since,))]

    def _give_up_lexical_index(self, exc: Exception) -> None:
        """A failing index (disk full, damaged files) is dropped for this process rather than
        retried on every query; FTS5 serves the searches, and the next process rebuilds it."""
        if self._lexical_index is not None:
            log.warning("%s: lexical index failed (%s); searching with FTS5", self.path, exc)
        self._lexical_index = None

    def _fts5_search(self, terms: list[str], k: int, tags: Sequence[str] | None) -> list[tuple[str, float]]:
        """FTS5's bm25() over the rarer terms, negated so higher is better."""
        query = _match_expression(self._ranking_terms(terms))
        if tags is None or "*" in tags:
            # Rank inside FTS5 first and join only the top k: joining every match before sorting
            # was 2x slower at 100k chunks (docs/benchmarks.md).
            sql = (
                "SELECT chunks.id, -f.score FROM (SELECT rowid, bm25(chunk_fts) AS score FROM chunk_fts "
                "WHERE chunk_fts MATCH ? ORDER BY score LIMIT ?) f JOIN chunks ON chunks.rowid = f.rowid "
                "ORDER BY f.score"
            )
            rows = self._conn().execute(sql, [query, k]).fetchall()
            return [(r[0], float(r[1])) for r in rows]
        visible, params = _visible_doc_clause(tags)
        sql = (
            "SELECT chunks.id, -bm25(chunk_fts) AS score FROM chunk_fts "
            "JOIN chunks ON chunks.rowid = chunk_fts.rowid "
            "JOIN documents ON documents.id = chunks.doc_id "
            f"WHERE chunk_fts MATCH ? AND {visible} ORDER BY bm25(chunk_fts) LIMIT ?"
        )
        rows = self._conn().execute(sql, [query, *params, k]).fetchall()
        return [(r[0], float(r[1])) for r in rows]

    def _ranking_terms(self, terms: Sequence[str]) -> list[str]:
        """The query terms worth a posting-list walk: rarest first, while the postings walked stay
        within `postings_budget`; the rarest term is always kept.

        FTS5 scores every chunk that matches any OR'ed term, so a term found in most chunks (a
        common kana pair such as した) makes a query touch nearly the whole index, while its BM25
        weight is close to nothing: idf = ln((N - n + 0.5) / (n + 0.5)) is at most ln 3 = 1.1 once
        n > N/4, against 7 to 11 for a term in a handful of chunks at N = 100,000. The terms left
        out are therefore the cheapest to lose. A store of a few thousand chunks never reaches the
        budget, so its ranking is exactly FTS5's over every term.
        A term the vocabulary does not list as given is kept: FTS5 folds case and diacritics when
        it tokenises the query, so it may still match, and an absent term costs nothing.
        `terms` are distinct and non-blank (lexical_search made them so)."""
        counts = self._term_counts(list(terms))
        kept: list[str] = []
        postings = 0
        for term in sorted(terms, key=lambda t: (counts[t], t)):
            if postings and postings + counts[term] > self.postings_budget:
                break
            kept.append(term)
            postings += counts[term]
        return kept

    def _term_counts(self, terms: list[str]) -> dict[str, int]:
        """How many chunks contain each term; cached until the next write (counting a common
        term walks its whole posting list)."""
        generation = self.generation()
        with self._term_lock:
            if self._term_cache_generation != generation or len(self._term_cache) > 200_000:
                self._term_cache = {}
                self._term_cache_generation = generation
            cache = self._term_cache
            missing = [t for t in terms if t not in cache]
        conn = self._conn()
        found = {}
        for term in missing:
            row = conn.execute("SELECT doc FROM chunk_fts_vocab WHERE term = ?", (term,)).fetchone()
            found[term] = row[0] if row else 0
        with self._term_lock:
            if self._term_cache_generation == generation:
                cache.update(found)
        return {t: found[t] if t in found else cache[t] for t in terms}

    def vector_search(self, vector: np.ndarray, k: int, tags: Sequence[str] | None = None) -> list[tuple[str, float]]:
        cache = self._vector_cache()
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
            allowed = self._visible_doc_ids(tags)
            mask = np.fromiter((d in allowed for d in cache.doc_ids), dtype=bool, count=len(cache.doc_ids))
            scores[~mask[cache.doc_index]] = -np.inf
        k = min(k, scores.shape[0])
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[np.isfinite(scores[top])]
        rowids = [int(r) for r in cache.rowids[top]]
        ids = self._chunk_ids_for_rowids(rowids)
        return [(ids[r], float(scores[i])) for r, i in zip(rowids, top) if r in ids]

    def _visible_doc_ids(self, tags: Sequence[str]) -> set[str]:
        visible, params = _visible_doc_clause(tags)
        return {r[0] for r in self._conn().execute(f"SELECT id FROM documents WHERE {visible}", params)}

    def _chunk_ids_for_rowids(self, rowids: list[int]) -> dict[int, str]:
        if not rowids:
            return {}
        marks = ",".join("?" * len(rowids))
        return dict(self._conn().execute(f"SELECT rowid, id FROM chunks WHERE rowid IN ({marks})", rowids))

    def _vector_cache(self) -> _VectorCache:
        generation = self.generation()
        cache = self._vectors
        if cache is not None and cache.generation == generation:
            return cache
        with self._vector_lock:
            cache = self._vectors
            if cache is not None and cache.generation == generation:
                return cache
            cache = (self._updated_vectors(cache) if cache is not None else None) or self._load_vectors()
            self._vectors = cache
            return cache

    def _updated_vectors(self, cache: _VectorCache) -> _VectorCache | None:
        """`cache` moved forward by the logged changes since its generation, or None when the log
        does not reach back that far. Rows of changed chunks are marked dead and their current
        vectors appended as a new block, so a write costs searchers the rows it touched, not a
        reload of every vector (0.7 s at 100k chunks) nor a copy of the matrix."""
        conn = self._conn()
        conn.execute("BEGIN")  # one snapshot for the generation, the log and the rows
        try:
            generation, changed = self._changes_since(conn, cache.generation)
            if changed is None:
                return None
            rows = conn.execute(
                f"SELECT v.rowid, v.vector, c.doc_id FROM ({_CHANGED_SINCE}) l "
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
        updated = _VectorCache(
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

    def _load_vectors(self) -> _VectorCache:
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
        return _VectorCache(generation, rowids[:n], blocks, doc_index[:n], doc_ids)


def open_store(path: str | Path) -> SQLiteStore:
    """Open (creating and migrating if needed) the SQLite store at `path`."""
    return SQLiteStore(path)

"""The PostgreSQL store's schema as named migrations (sekisho.db.Migrations, part "store").

The same documents and chunks as the SQLite store, with PostgreSQL doing the indexing itself:
- `chunk_lexical`: each chunk's pre-tokenised BM25 text, its token count and a `tsvector` of those
  tokens exactly as the analyser cut them (built in Python, positions kept for term frequencies;
  no text search configuration re-splits Japanese), under a GIN index.
- `chunk_vectors`: pgvector `vector` columns; the HNSW index is made on the first write, when the
  embedder's dimension is known (lexical.py, vectors.py).
- `meta`: the generation every write moves on (writers queue on its row, so replacing one
  document twice at once leaves one), chunk and token counts for BM25, the embedder.
"""

from __future__ import annotations

from sekisho.db import Migrations

STORE_MIGRATIONS = Migrations("store")

# Its own step, so a server without pgvector fails here with the message vectors.py words.
STORE_MIGRATIONS.sql("vector_extension", "CREATE EXTENSION IF NOT EXISTS vector")

STORE_MIGRATIONS.sql("documents_chunks_lexical_vectors", """
    CREATE TABLE documents (
        id TEXT PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        media_type TEXT NOT NULL,
        encoding TEXT,
        text TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        ingested_at DOUBLE PRECISION NOT NULL DEFAULT 0,
        recipe TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE document_tags (
        doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        PRIMARY KEY (doc_id, tag)
    );
    CREATE INDEX document_tags_by_tag ON document_tags(tag);
    CREATE TABLE chunks (
        rowid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL,
        text TEXT NOT NULL,
        norm_text TEXT NOT NULL,
        start INTEGER NOT NULL,
        "end" INTEGER NOT NULL,
        page INTEGER,
        heading TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX chunks_by_doc ON chunks(doc_id);
    CREATE TABLE chunk_lexical (
        rowid BIGINT PRIMARY KEY REFERENCES chunks(rowid) ON DELETE CASCADE,
        tokens TEXT NOT NULL,
        length INTEGER NOT NULL,
        tsv tsvector NOT NULL
    );
    CREATE INDEX chunk_lexical_terms ON chunk_lexical USING gin (tsv);
    CREATE TABLE chunk_vectors (
        rowid BIGINT PRIMARY KEY REFERENCES chunks(rowid) ON DELETE CASCADE,
        doc_id TEXT NOT NULL,
        embedding vector NOT NULL
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO meta(key, value) VALUES ('generation', '0'), ('chunks', '0'), ('tokens', '0'),
        ('store_id', md5(random()::text || clock_timestamp()::text));
    """)

# A search's first stage reads only rowid and length of every chunk holding a query term (up to
# 40,000 at 100k chunks). With the tokens and the tsvector inline, four rows filled a page and that
# read was most of the search; pushed out of line (TOAST) from 128 bytes on, a page holds a hundred.
STORE_MIGRATIONS.sql("narrow_lexical_rows", """
    ALTER TABLE chunk_lexical SET (toast_tuple_target = 128)
    """)

# How many chunks hold each term (BM25's document frequency), kept by every write in its own
# transaction: looked up in one statement per search instead of counted in the GIN index (a common
# term's count walked tens of thousands of postings). Filled here from what the store holds.
STORE_MIGRATIONS.sql("term_stats", """
    CREATE TABLE term_stats (
        term TEXT PRIMARY KEY,
        chunks INTEGER NOT NULL
    );
    INSERT INTO term_stats(term, chunks) SELECT word, ndoc FROM ts_stat('SELECT tsv FROM chunk_lexical')
    """)

# Re-embedding (store/staging.py): the new embedder's vectors are staged here, by chunk row (gone
# with the chunk), until every chunk has one and they replace chunk_vectors in one transaction;
# `store_claims` lets one process of all the servers at a time fill it.
STORE_MIGRATIONS.sql("staged_vectors", """
    CREATE TABLE chunk_staged_vectors (
        rowid BIGINT PRIMARY KEY REFERENCES chunks(rowid) ON DELETE CASCADE,
        embedding vector NOT NULL
    );
    CREATE TABLE store_claims (
        name TEXT PRIMARY KEY,
        worker TEXT NOT NULL,
        until DOUBLE PRECISION NOT NULL
    )
    """)

# The change log each server's tantivy index catches up from (store/changelog.py: every write logs
# the chunk rowids it touched, in its own transaction). Nothing older than now is logged, so an
# index built before this migration is rebuilt.
STORE_MIGRATIONS.sql("chunk_changes", """
    CREATE TABLE chunk_changes (
        generation BIGINT NOT NULL,
        rowid BIGINT NOT NULL
    );
    CREATE INDEX chunk_changes_by_generation ON chunk_changes(generation);
    INSERT INTO meta(key, value) SELECT 'changes_floor', value FROM meta WHERE key = 'generation'
    """)

"""The SQLite store's schema as named migrations (sekisho.db.Migrations).

Stores created before named migrations kept a `schema_version` counter; `legacy_steps` reads it
so such a store records its first steps as applied and moves on from there. The counter is then
set to a value no older sekisho accepts, so an older sekisho refuses the file instead of
misreading it.
"""

from __future__ import annotations

import sqlite3

from sekisho.db import Migrations

STORE_MIGRATIONS = Migrations("store")
# What an older sekisho reads from schema_version: above its last numbered migration (4), so it
# says "newer than this sekisho understands; upgrade sekisho".
NAMED_MIGRATIONS_MARK = 1000


STORE_MIGRATIONS.sql("documents_chunks_fts_vectors", """
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
    """)


# Per-term document counts, read by lexical_search to leave out terms too common to rank.
STORE_MIGRATIONS.sql("fts_vocabulary", """
    CREATE VIRTUAL TABLE chunk_fts_vocab USING fts5vocab(chunk_fts, 'row');
    """)


# What the derived indexes need to catch up instead of reloading (the tantivy index beside
# the file, the in-memory vector matrix): which store this is, and the chunk rowids each
# generation touched. Writes before this migration were not logged, so anything derived
# from an older generation is rebuilt.
STORE_MIGRATIONS.sql("chunk_change_log", """
    CREATE TABLE chunk_changes (
        generation INTEGER NOT NULL,
        rowid INTEGER NOT NULL
    );
    CREATE INDEX chunk_changes_by_generation ON chunk_changes(generation);
    INSERT INTO meta(key, value) VALUES ('store_id', lower(hex(randomblob(16))));
    INSERT INTO meta(key, value) SELECT 'changes_floor', value FROM meta WHERE key = 'generation';
    """)


# Documents ingested before this remember no recipe: their files are processed again on the
# next ingest, with whatever extraction and chunking sekisho has by then.
STORE_MIGRATIONS.sql("document_recipe", """
    ALTER TABLE documents ADD COLUMN recipe TEXT NOT NULL DEFAULT '';
    """)


# Re-embedding (store/staging.py): the new embedder's vectors are staged here, by chunk row, until
# every chunk has one and they replace chunk_vectors in one transaction; `store_claims` lets one
# process at a time fill it.
STORE_MIGRATIONS.sql("staged_vectors", """
    CREATE TABLE chunk_staged_vectors (
        rowid INTEGER PRIMARY KEY,
        vector BLOB NOT NULL
    );
    CREATE TABLE store_claims (
        name TEXT PRIMARY KEY,
        worker TEXT NOT NULL,
        until REAL NOT NULL
    );
    """)


def legacy_steps(conn: sqlite3.Connection) -> int:
    """How many of STORE_MIGRATIONS a store from before named migrations has (its schema_version),
    0 for a new file."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone():
        return 0
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return min(row[0], 4) if row else 0


def mark_named(conn: sqlite3.Connection) -> None:
    """Leave the old counter at a value older sekisho versions refuse."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    conn.execute("DELETE FROM schema_version")
    conn.execute("INSERT INTO schema_version(version) VALUES (?)", (NAMED_MIGRATIONS_MARK,))

"""Persistent storage for the knowledge base: records, the Store protocol, the SQLite store and the
PostgreSQL store; `open_store` picks one by its target. Both keep a tantivy index derived from
their chunks (`lexical_index.py`, caught up from `changelog.py`)."""

from __future__ import annotations

from pathlib import Path

from sekisho.store.protocol import EmbedderChanged, Store, StoreError
from sekisho.store.records import Chunk, Document, Hit, Location, StoredChunks, Unstaged
from sekisho.store.sqlite import SQLiteStore


def is_url(target: str | Path) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


def open_store(target: str | Path, *, lexical_index: Path | None = None) -> Store:
    """Open (creating and migrating if needed) the store at a file path (SQLite) or a
    postgresql:// URL (PostgreSQL with pgvector). `lexical_index`: the local folder where a
    PostgreSQL store keeps this server's tantivy index (a SQLite store keeps its own beside the
    file)."""
    if is_url(target):
        from sekisho.store.postgres import PostgresStore

        return PostgresStore(str(target), lexical_index)
    return SQLiteStore(target)


__all__ = ["Chunk", "Document", "EmbedderChanged", "Hit", "Location", "SQLiteStore", "Store", "StoreError",
           "StoredChunks", "Unstaged", "is_url", "open_store"]

"""The embedded SQLite store, split by job: `store.py` (documents, chunks, writes), `schema.py`
(named migrations), `lexical.py` (BM25: tantivy beside the file, FTS5 inside it; the change log
and the tantivy catch-up it shares with PostgreSQL are in store/), `vectors.py` (the dense
matrix), `rows.py` (shared row helpers)."""

from sekisho.store.protocol import StoreError
from sekisho.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore", "StoreError"]

"""The PostgreSQL store (pgvector): `store.py` (documents, chunks, vectors, writes), `schema.py`
(named migrations), `lexical.py` (BM25 over the analyser's tokens in a tsvector, and the change
source of each server's tantivy index: store/lexical_index.py)."""

from sekisho.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]

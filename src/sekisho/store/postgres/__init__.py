"""The PostgreSQL store (pgvector): `store.py` (documents, chunks, vectors, writes), `schema.py`
(named migrations), `lexical.py` (BM25 over the analyser's tokens in a tsvector)."""

from sekisho.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]

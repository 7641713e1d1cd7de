"""Row-level helpers the SQLite store's modules share: id lists bound in batches, rowids to chunk
ids, and (from store/rows.py, shared with PostgreSQL) records from rows and tag visibility."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

from sekisho.store.rows import CHUNK_COLUMNS, DOC_COLUMNS, chunk_of, document_of, visible_doc_clause

__all__ = ["CHUNK_COLUMNS", "DOC_COLUMNS", "chunk_ids_for_rowids", "chunk_of", "document_of", "rows_for_ids",
           "tags_by_document", "visible_doc_clause", "visible_doc_ids"]


def rows_for_ids(conn: sqlite3.Connection, query: str, ids: Sequence[object]) -> Iterator[tuple]:
    """The rows of `query` for all `ids`, bound to its `{marks}` IN list in batches that stay
    under SQLite's bound-parameter limit."""
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        yield from conn.execute(query.format(marks=",".join("?" * len(part))), part)


def tags_by_document(conn: sqlite3.Connection, doc_ids: set[str] | None) -> dict[str, list[str]]:
    """doc id -> its access tags, for `doc_ids` only (None: every document). A catch-up after a
    small write reads the tags of the documents it touched, not the whole table."""
    rows = (conn.execute("SELECT doc_id, tag FROM document_tags") if doc_ids is None else
            rows_for_ids(conn, "SELECT doc_id, tag FROM document_tags WHERE doc_id IN ({marks})", sorted(doc_ids)))
    tags: dict[str, list[str]] = {}
    for doc_id, tag in rows:
        tags.setdefault(doc_id, []).append(tag)
    return tags


def chunk_ids_for_rowids(conn: sqlite3.Connection, rowids: list[int]) -> dict[int, str]:
    if not rowids:
        return {}
    return dict(rows_for_ids(conn, "SELECT rowid, id FROM chunks WHERE rowid IN ({marks})", rowids))


def visible_doc_ids(conn: sqlite3.Connection, tags: Sequence[str]) -> set[str]:
    visible, params = visible_doc_clause(tags)
    return {r[0] for r in conn.execute(f"SELECT id FROM documents WHERE {visible}", params)}

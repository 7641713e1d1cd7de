"""Row-level helpers the SQLite store's modules share: records from rows, id lists bound in batches,
and which documents a principal's tags make visible."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence

from sekisho.store.records import Chunk, Document, Location


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


def visible_doc_clause(tags: Sequence[str] | None) -> tuple[str, list[str]]:
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


def document_of(row: sqlite3.Row | tuple) -> Document:
    id_, path, title, content_hash, media_type, encoding, text, tags, ingested_at, recipe = row
    return Document(
        id=id_, path=path, title=title, content_hash=content_hash, media_type=media_type,
        encoding=encoding, text=text, tags=tuple(json.loads(tags)), ingested_at=ingested_at, recipe=recipe,
    )


def chunk_of(row: tuple) -> Chunk:
    id_, doc_id, ordinal, text, norm_text, start, end, page, heading = row
    return Chunk(
        id=id_, doc_id=doc_id, ordinal=ordinal, text=text, norm_text=norm_text,
        location=Location(start=start, end=end, page=page, heading=tuple(json.loads(heading))),
    )


DOC_COLUMNS = "id, path, title, content_hash, media_type, encoding, text, tags, ingested_at, recipe"
CHUNK_COLUMNS = "id, doc_id, ordinal, text, norm_text, start, end, page, heading"




def chunk_ids_for_rowids(conn: sqlite3.Connection, rowids: list[int]) -> dict[int, str]:
    if not rowids:
        return {}
    return dict(rows_for_ids(conn, "SELECT rowid, id FROM chunks WHERE rowid IN ({marks})", rowids))


def visible_doc_ids(conn: sqlite3.Connection, tags: Sequence[str]) -> set[str]:
    visible, params = visible_doc_clause(tags)
    return {r[0] for r in conn.execute(f"SELECT id FROM documents WHERE {visible}", params)}

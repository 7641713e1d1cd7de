"""Rows to records and tag visibility, the same for both stores' SQL: the documents and chunks
tables have the same columns in SQLite and PostgreSQL ("end" quoted: a keyword in PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from sekisho.store.protocol import StoreError
from sekisho.store.records import Chunk, Document, Location

DOC_COLUMNS = "id, path, title, content_hash, media_type, encoding, text, tags, ingested_at, recipe"
CHUNK_COLUMNS = 'id, doc_id, ordinal, text, norm_text, start, "end", page, heading'
QUALIFIED_CHUNK_COLUMNS = ", ".join("c." + column.strip() for column in CHUNK_COLUMNS.split(","))  # chunks AS c


def document_of(row: tuple) -> Document:
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


def document_row(document: Document) -> tuple:
    """The values of DOC_COLUMNS for a document."""
    return (document.id, document.path, document.title, document.content_hash, document.media_type,
            document.encoding, document.text, json.dumps(list(document.tags), ensure_ascii=False),
            document.ingested_at, document.recipe)


def chunk_row(chunk: Chunk) -> tuple:
    """The values of CHUNK_COLUMNS for a chunk."""
    loc = chunk.location
    return (chunk.id, chunk.doc_id, chunk.ordinal, chunk.text, chunk.norm_text, loc.start, loc.end, loc.page,
            json.dumps(list(loc.heading), ensure_ascii=False))


def visible_doc_clause(tags: Sequence[str] | None) -> tuple[str, list[str]]:
    """SQL condition on `documents.id` for what a principal with these tags may see.

    None or a tag list containing "*" sees everything; () sees only untagged documents;
    otherwise untagged documents plus those carrying any of the tags."""
    if tags is None or "*" in tags:
        return "1 = 1", []
    untagged = "NOT EXISTS (SELECT 1 FROM document_tags t WHERE t.doc_id = documents.id)"
    if not tags:
        return untagged, []
    marks = ",".join("?" * len(tags))
    tagged = f"EXISTS (SELECT 1 FROM document_tags t WHERE t.doc_id = documents.id AND t.tag IN ({marks}))"
    return f"({untagged} OR {tagged})", list(tags)


def checked_replacement(document: Document, chunks: Sequence[Chunk], lexical_texts: Sequence[str],
                        vectors: np.ndarray) -> np.ndarray:
    """What replace_document refuses before writing anything, in both stores; the vectors as
    contiguous float32."""
    if len(lexical_texts) != len(chunks) or len(vectors) != len(chunks):
        raise StoreError(f"{document.path}: {len(chunks)} chunks but {len(lexical_texts)} lexical texts "
                         f"and {len(vectors)} vectors")
    if any(c.doc_id != document.id for c in chunks):
        raise StoreError(f"{document.path}: a chunk belongs to another document")
    return np.ascontiguousarray(vectors, dtype=np.float32)

"""The records that cross the store boundary: a document, its chunks, and a search hit."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Location:
    """Where a chunk sits in its source, precise enough to cite."""

    start: int  # character offset into Document.text (the original, un-normalised text)
    end: int
    page: int | None = None  # 1-based PDF page
    heading: tuple[str, ...] = ()  # Markdown/HTML heading path, outermost first

    def label(self) -> str:
        """Human-readable place, Japanese first: 'p.3 / 手続き > 必要書類'."""
        parts = []
        if self.page is not None:
            parts.append(f"p.{self.page}")
        if self.heading:
            parts.append(" > ".join(self.heading))
        if not parts:
            parts.append(f"{self.start}-{self.end}文字目")
        return " / ".join(parts)


@dataclass(frozen=True)
class Document:
    id: str  # stable id derived from the source path
    path: str  # source path as given by the user (or upload name)
    title: str
    content_hash: str  # sha256 of the raw file bytes
    media_type: str  # "text/plain", "text/markdown", "text/html", "application/pdf", docx
    encoding: str | None  # detected source encoding for text formats
    text: str  # the original extracted text, kept for display and citation
    tags: tuple[str, ...] = ()  # access tags; a principal retrieves only what its role may see
    ingested_at: float = 0.0
    # How text and chunks were made from the bytes (extractor version, chunk size): the same file
    # under another recipe is processed again, not skipped as unchanged ("" before recipes).
    recipe: str = ""


@dataclass(frozen=True)
class Chunk:
    id: str  # f"{doc_id}:{ordinal}"
    doc_id: str
    ordinal: int
    text: str  # original text slice (Document.text[start:end])
    norm_text: str  # NFKC-normalised text used for indexing
    location: Location


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    document: Document
    score: float  # fused score; higher is better
    rank: int  # 1-based rank in the fused list
    lexical_rank: int | None = None
    dense_rank: int | None = None
    matched_terms: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class StoredChunks:
    """A document's chunks as a store holds them, in order: what `replace_document` was given
    (copying between stores: sekisho migrate)."""

    chunks: list[Chunk]
    lexical_texts: list[str]
    vectors: np.ndarray  # (len(chunks), dim) float32


@dataclass(frozen=True)
class Unstaged:
    """Chunks without a staged vector (re-embedding), as read at one generation of the store."""

    generation: int
    keys: list[int]  # each chunk's row, ascending: its staged vector attaches to that row
    chunks: list[Chunk]
    titles: list[str]  # each chunk's document title (its passage text starts with it)

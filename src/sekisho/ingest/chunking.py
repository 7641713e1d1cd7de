"""Japanese-aware chunking: sentences first, then bounded chunks with sentence-level overlap.

A chunk never starts or ends inside a sentence unless one sentence alone exceeds the bound, and
every chunk is an exact slice of the original text, so a citation can point at the very
characters the reader will find in the source.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sekisho.store.records import Chunk, Location
from sekisho.text import clean, sentence_spans, trim_span

DEFAULT_CHUNK_CHARS = 400
DEFAULT_CHUNK_OVERLAP = 80

# Where an over-long sentence may be cut when it must be: after a comma or a space.
_SOFT_BREAKS = frozenset("、，,；;：: \u3000")


@dataclass(frozen=True)
class Section:
    """A stretch of the document that shares one place: a PDF page or a heading's body.
    Chunks never cross sections, so each chunk's page and heading path are exact."""

    start: int
    end: int
    heading: tuple[str, ...] = ()
    page: int | None = None


def _split_long(text: str, span: tuple[int, int], max_chars: int) -> list[tuple[int, int]]:
    """Cut one sentence longer than max_chars into pieces, after a comma or space when one lies
    in the second half of the window, otherwise at the bound."""
    start, end = span
    pieces = []
    while end - start > max_chars:
        limit = start + max_chars
        cut = next((k + 1 for k in range(limit - 1, start + max_chars // 2, -1) if text[k] in _SOFT_BREAKS), limit)
        piece = trim_span(text, start, cut)
        if piece:
            pieces.append(piece)
        start = cut
    rest = trim_span(text, start, end)
    if rest:
        pieces.append(rest)
    return pieces


def _pack(sentences: Sequence[tuple[int, int]], max_chars: int, overlap: int) -> Iterable[tuple[int, int]]:
    """Greedy packing of consecutive sentences into spans of at most max_chars; each chunk after
    the first repeats the previous chunk's trailing sentences up to `overlap` characters."""
    i, n = 0, len(sentences)
    while i < n:
        j = i
        while j + 1 < n and sentences[j + 1][1] - sentences[i][0] <= max_chars:
            j += 1
        yield sentences[i][0], sentences[j][1]
        if j + 1 >= n:
            return
        k = j + 1
        while (
            k - 1 > i
            and sentences[j][1] - sentences[k - 1][0] <= overlap
            and sentences[j + 1][1] - sentences[k - 1][0] <= max_chars
        ):
            k -= 1
        i = k


def chunk(
    text: str,
    *,
    doc_id: str,
    sections: Sequence[Section] | None = None,
    max_chars: int = DEFAULT_CHUNK_CHARS,
    overlap: int = DEFAULT_CHUNK_OVERLAP,
) -> list[Chunk]:
    """Split ``text`` into chunks of at most ``max_chars`` characters at sentence boundaries,
    each section separately; ``Chunk.text`` is ``text[start:end]`` and ``norm_text`` its NFKC
    form for indexing."""
    if max_chars < 1 or overlap < 0:
        raise ValueError("max_chars must be positive and overlap non-negative")
    chunks: list[Chunk] = []
    for section in sections if sections is not None else (Section(0, len(text)),):
        sentences: list[tuple[int, int]] = []
        for span in sentence_spans(text, section.start, section.end):
            sentences.extend(_split_long(text, span, max_chars) if span[1] - span[0] > max_chars else [span])
        for start, end in _pack(sentences, max_chars, overlap):
            original = text[start:end]
            chunks.append(
                Chunk(
                    id=f"{doc_id}:{len(chunks)}",
                    doc_id=doc_id,
                    ordinal=len(chunks),
                    text=original,
                    norm_text=clean(original),
                    location=Location(start=start, end=end, page=section.page, heading=section.heading),
                )
            )
    return chunks

"""Japanese-aware chunking: sentences first, then bounded chunks with sentence-level overlap.

A chunk never starts or ends inside a sentence unless one sentence alone exceeds the bound, and
every chunk is an exact slice of the original text, so a citation can point at the very
characters the reader will find in the source.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sekisho.ingest.normalize import normalize
from sekisho.store.records import Chunk, Location

DEFAULT_CHUNK_CHARS = 400
DEFAULT_CHUNK_OVERLAP = 80

_ENDERS = frozenset("。！？!?．｡")
_OPENERS = frozenset("「『（(【〔〈《［[｛{“")
_CLOSERS = frozenset("」』）)】〕〉》］]｝}”’\"'")
_QUOTATIVE = frozenset("とっ")
_SIGNIFICANT = re.compile("[" + re.escape("".join(sorted(_ENDERS | _OPENERS | _CLOSERS | {".", "\n"}))) + "]")
_LOWER_NEXT = re.compile(r"[ \t]+[a-z]")
# Where an over-long sentence may be cut when it must be: after a comma or a space.
_SOFT_BREAKS = frozenset("、，,；;：: \u3000")
_WHITESPACE = " \t\r\n\u3000\f\v"


@dataclass(frozen=True)
class Section:
    """A stretch of the document that shares one place: a PDF page or a heading's body.
    Chunks never cross sections, so each chunk's page and heading path are exact."""

    start: int
    end: int
    heading: tuple[str, ...] = ()
    page: int | None = None


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start] in _WHITESPACE:
        start += 1
    while end > start and text[end - 1] in _WHITESPACE:
        end -= 1
    return (start, end) if start < end else None


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) of each sentence in text[start:end], whitespace trimmed.

    A sentence ends at 。！？!?． (a '.' only before whitespace and not after a digit), taking any
    closing brackets with it (「…です。」 stays whole), or at a line break: lists, headings and
    table rows in official documents end without punctuation. An ender inside brackets does not
    end the sentence unless the brackets close right after it.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    seg = start
    depth = 0
    i = start

    def close(at: int) -> None:
        nonlocal seg
        span = _trimmed(text, seg, at)
        if span:
            spans.append(span)
        seg = at

    while i < end:
        # Jump over ordinary characters; only these can change the bracket depth or end a sentence.
        found = _SIGNIFICANT.search(text, i, end)
        if found is None:
            break
        i = found.start()
        ch = text[i]
        if ch == "\n":
            close(i)
            depth = 0
            i += 1
            continue
        if ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS:
            depth = max(0, depth - 1)
        elif ch in _ENDERS or (ch == "." and _ends_latin_sentence(text, i, end)):
            j = i + 1
            closed = False
            while j < end and (text[j] in _ENDERS or text[j] in _CLOSERS):
                if text[j] in _CLOSERS:
                    depth = max(0, depth - 1)
                    closed = True
                j += 1
            # 「…です。」と言った: a quotative particle after the quote continues the sentence.
            quoted_on = closed and j < end and text[j] in _QUOTATIVE
            if depth == 0 and not quoted_on:
                close(j)
            i = j
            continue
        i += 1
    close(end)
    return spans


def _ends_latin_sentence(text: str, i: int, end: int) -> bool:
    """A '.' before whitespace, not after a digit (3.14) and not before a lower-case word
    ("8:30 a.m. to", "e.g. the"): abbreviations do not end sentences."""
    before = text[i - 1] if i > 0 else ""
    after = text[i + 1] if i + 1 < end else " "
    return after in _WHITESPACE and not before.isdigit() and not _LOWER_NEXT.match(text, i + 1, end)


def _split_long(text: str, span: tuple[int, int], max_chars: int) -> list[tuple[int, int]]:
    """Cut one sentence longer than max_chars into pieces, after a comma or space when one lies
    in the second half of the window, otherwise at the bound."""
    start, end = span
    pieces = []
    while end - start > max_chars:
        limit = start + max_chars
        cut = next((k + 1 for k in range(limit - 1, start + max_chars // 2, -1) if text[k] in _SOFT_BREAKS), limit)
        piece = _trimmed(text, start, cut)
        if piece:
            pieces.append(piece)
        start = cut
    rest = _trimmed(text, start, end)
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
                    norm_text=normalize(original),
                    location=Location(start=start, end=end, page=section.page, heading=section.heading),
                )
            )
    return chunks

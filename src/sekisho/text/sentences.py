"""Sentence boundaries in Japanese (and English) text: 。！？ and line breaks, not inside brackets.

`sentence_spans` is the chunker's: a chunk never starts or ends inside a sentence, closing brackets
stay with the sentence they end, and 「…です。」と言った continues. `split_sentences` is the reader's,
used to quote and check answers sentence by sentence; it stops protecting a bracket left open too
long. They disagree on 12 of 1,147 JSQuAD paragraphs (a bracket after 。, as in 「…！」（参照）), and
the reader's split feeds answer_context, which moves 3 of 4,442 JSQuAD questions: merging them
would change the small-model answer figures, which were measured with these two.
"""

from __future__ import annotations

import re

_ENDERS = frozenset("。！？!?．｡")
_OPENERS = frozenset("「『（(【〔〈《［[｛{“")
_CLOSERS = frozenset("」』）)】〕〉》］]｝}”’\"'")
_QUOTATIVE = frozenset("とっ")
_SIGNIFICANT = re.compile("[" + re.escape("".join(sorted(_ENDERS | _OPENERS | _CLOSERS | {".", "\n"}))) + "]")
_LOWER_NEXT = re.compile(r"[ \t]+[a-z]")
_WHITESPACE = " \t\r\n\u3000\f\v"


def trim_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """text[start:end] without leading and trailing whitespace, as a span; None if nothing is left."""
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
        span = trim_span(text, seg, at)
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


_OPEN = "「『（(【［[〈《"
_CLOSE = "」』）)】］]〉》"
_READER_ENDERS = "。！？!?"
# A bracket left open longer than this is a stray bracket, not a quotation: stop protecting it.
_MAX_QUOTE = 200



def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence. Boundaries are 。！？ and newlines, but not inside 「」 or
    （）, so a quoted sentence stays with the sentence that quotes it."""
    spans: list[tuple[int, int]] = []
    start = 0
    depth = 0
    opened_at = 0
    for i, ch in enumerate(text):
        if ch in _OPEN:
            if depth == 0:
                opened_at = i
            depth += 1
        elif ch in _CLOSE and depth:
            depth -= 1
        if depth and i - opened_at > _MAX_QUOTE:
            depth = 0
        # A full stop ends an English sentence only before a space, so 3.14 stays whole, and not
        # when a lower-case word follows: "from 8:30 a.m. to 5:15 p.m." and "e.g. the" go on.
        english_stop = ch == "." and i + 1 < len(text) and text[i + 1].isspace() and not _LOWER_NEXT.match(text, i + 1)
        if ch == "\n" or ((ch in _READER_ENDERS or english_stop) and depth == 0):
            # Keep runs of closing punctuation ("。」", "！？") with the sentence they end.
            end = i + 1
            spans.append((start, end))
            start = end
            depth = 0
    spans.append((start, len(text)))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            out.append((s, e))
    return out


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]



"""Morphological analysis: the one place the proofreader touches Sudachi.

Everything else works on `Token`s. Sudachi's split mode C keeps compounds whole (市役所, 事務,
取扱説明書), so a rule keyed on 所 or 事 never sees the 所 of 市役所 or the 事 of 事務; its
readings tell 時 (トキ) from the suffix 時 (ジ) of 開始時.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

# Sudachi rejects inputs over 49,149 bytes; 12,000 characters stay under it even at 4 bytes each.
_MAX_CHARS = 12_000
_local = threading.local()


@dataclass(frozen=True, slots=True)
class Token:
    surface: str  # as written (offsets below index the analysed text)
    pos: tuple[str, ...]  # Sudachi's six part-of-speech fields
    lemma: str  # dictionary form
    reading: str  # katakana reading
    start: int
    end: int

    @property
    def conjugation(self) -> str:
        return self.pos[5]


@lru_cache(maxsize=1)
def _dictionary():
    from sudachipy import Dictionary

    return Dictionary(dict="core")


def _tokenizer():
    """A tokenizer per thread (Sudachi's are not thread-safe; the dictionary is shared)."""
    tok = getattr(_local, "tokenizer", None)
    if tok is None:
        from sudachipy import SplitMode

        tok = _dictionary().tokenizer(mode=SplitMode.C)
        _local.tokenizer = tok
    return tok


def pieces(text: str) -> Iterator[tuple[int, str]]:
    """Long text cut at line or sentence ends into pieces Sudachi accepts, with their offsets."""
    start = 0
    while start < len(text):
        end = min(len(text), start + _MAX_CHARS)
        if end < len(text):
            cut = max(text.rfind("\n", start, end), text.rfind("。", start, end))
            if cut > start:
                end = cut + 1
        yield start, text[start:end]
        start = end


def analyze(text: str) -> list[Token]:
    """Sudachi (core dictionary, split mode C) tokens of `text`, offsets into `text`."""
    tokenizer = _tokenizer()
    tokens: list[Token] = []
    append = tokens.append
    for base, piece in pieces(text):
        for m in tokenizer.tokenize(piece):
            append(Token(m.surface(), m.part_of_speech(), m.dictionary_form(), m.reading_form(),
                         base + m.begin(), base + m.end()))
    return tokens


def tokenize_only(text: str) -> int:
    """Sudachi alone over `text` (the benchmark's baseline); returns the number of morphemes."""
    tokenizer = _tokenizer()
    return sum(len(tokenizer.tokenize(piece)) for _, piece in pieces(text))

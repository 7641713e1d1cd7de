"""Japanese morphological analysis (SudachiPy, core dictionary): one dictionary per process,
one tokenizer per thread and split mode (a Sudachi tokenizer is not thread-safe; the dictionary
underneath is shared)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import lru_cache

from sudachipy import Dictionary, SplitMode

from sekisho.text.normalize import compact

SPLIT_MODES = {"A": SplitMode.A, "B": SplitMode.B, "C": SplitMode.C}
# Sudachi rejects inputs over 49,149 bytes; 12,000 characters stay under it even at 4 bytes each.
MAX_CHARS = 12_000
_local = threading.local()


@lru_cache(maxsize=1)
def dictionary() -> Dictionary:
    """Sudachi's core dictionary (loading it takes a moment, so once per process)."""
    return Dictionary(dict="core")


def tokenizer(mode: str = "C"):
    """This thread's Sudachi tokenizer for split mode A, B or C."""
    if mode not in SPLIT_MODES:
        raise ValueError(f"unknown Sudachi split mode {mode!r} (A, B or C)")
    tokenizers = getattr(_local, "tokenizers", None)
    if tokenizers is None:
        tokenizers = _local.tokenizers = {}
    if mode not in tokenizers:
        tokenizers[mode] = dictionary().tokenizer(mode=SPLIT_MODES[mode])
    return tokenizers[mode]


def pieces(text: str) -> Iterator[tuple[int, str]]:
    """Long text cut at line or sentence ends into pieces Sudachi accepts, with their offsets."""
    start = 0
    while start < len(text):
        end = min(len(text), start + MAX_CHARS)
        if end < len(text):
            cut = max(text.rfind("\n", start, end), text.rfind("。", start, end))
            if cut > start:
                end = cut + 1
        yield start, text[start:end]
        start = end


def morphemes(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """(surface, part of speech) with Sudachi's core dictionary, mode C (whole compounds)."""
    return [(m.surface(), tuple(m.part_of_speech()[:3])) for m in tokenizer("C").tokenize(text)]


def named_entities(text: str) -> set[str]:
    """Proper nouns (people, places, organisations, works), consecutive ones joined: 'ジョン・ニーダム'."""
    out: set[str] = set()
    current: list[str] = []
    for surface, pos in morphemes(text):
        if pos[:2] == ("名詞", "固有名詞"):
            current.append(surface)
        elif surface == "・" and current:
            current.append(surface)
        else:
            if current:
                out.add("".join(current).strip("・"))
            current = []
    if current:
        out.add("".join(current).strip("・"))
    return {compact(e) for e in out if e}

"""Text normalisation for indexing and matching (never for display)."""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

import snowballstemmer

# A line break between two Japanese characters is layout (hard-wrapped PDF lines, narrow
# columns), not a word boundary: "住民\n票" must index as "住民票".
_JA = r"\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_WRAPPED_JA = re.compile(rf"(?<=[{_JA}])[ \t]*\n[ \t]*(?=[{_JA}])")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """NFKC (full-width ASCII to half-width, half-width katakana to full-width, ① to 1, ...),
    Japanese line wraps joined, and whitespace runs collapsed to one space."""
    text = unicodedata.normalize("NFKC", text)
    text = _WRAPPED_JA.sub("", text)
    return _SPACES.sub(" ", text).strip()


_stemmers = threading.local()


@lru_cache(maxsize=65_536)
def english_stem(word: str) -> str:
    """Snowball (Porter2) English stem of a lower-cased word: move/moved/moving meet, as do
    closes/closed and renewal/renewed. One stemmer for index terms and for answer matching, so a
    word the search matched is the word the answerer looks for. A Snowball stemmer is not
    thread-safe, so each thread gets its own."""
    stemmer = getattr(_stemmers, "english", None)
    if stemmer is None:
        stemmer = _stemmers.english = snowballstemmer.stemmer("english")
    return stemmer.stemWord(word)

"""English stemming, one stemmer for index terms and for answer matching, so a word the search
matched is the word the answerer looks for."""

from __future__ import annotations

import threading
from functools import lru_cache

import snowballstemmer

_stemmers = threading.local()


@lru_cache(maxsize=65_536)
def english_stem(word: str) -> str:
    """Snowball (Porter2) English stem of a lower-cased word: move/moved/moving meet, as do
    closes/closed and renewal/renewed (a cruder suffix stripper split "moved" (mov) from "move").
    A Snowball stemmer is not thread-safe, so each thread gets its own."""
    stemmer = getattr(_stemmers, "english", None)
    if stemmer is None:
        stemmer = _stemmers.english = snowballstemmer.stemmer("english")
    return stemmer.stemWord(word)

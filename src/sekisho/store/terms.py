"""Which query terms BM25 walks, for both stores' in-database engines (FTS5, PostgreSQL's GIN).

Such an engine scores every chunk that matches any OR'ed term, so a term found in most chunks (a
common kana pair such as した) makes a query touch nearly the whole index, while its BM25 weight is
close to nothing: idf = ln((N - n + 0.5) / (n + 0.5)) is at most ln 3 = 1.1 once n > N/4, against
7 to 11 for a term in a handful of chunks at N = 100,000. The terms left out are therefore the
cheapest to lose. A store of a few thousand chunks never reaches the budget, so its ranking is
exactly the engine's over every term.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

# Chosen by bench/retrieval_scale.py and bench/retrieval_jsquad.py (docs/benchmarks.md, ## Retrieval).
POSTINGS_BUDGET = 40_000


def ranking_terms(terms: Sequence[str], counts: dict[str, int], budget: float) -> list[str]:
    """The rarest terms while the postings walked stay within `budget`; the rarest is always kept.
    `terms` are distinct and non-blank."""
    kept: list[str] = []
    postings = 0
    for term in sorted(terms, key=lambda t: (counts[t], t)):
        if postings and postings + counts[term] > budget:
            break
        kept.append(term)
        postings += counts[term]
    return kept


class TermCounts:
    """How many chunks contain each term, cached until the store's generation moves (counting a
    common term walks its whole posting list)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, int] = {}
        self._generation = -1

    def get(self, terms: list[str], generation: int, count: Callable[[str], int]) -> dict[str, int]:
        with self._lock:
            if self._generation != generation or len(self._cache) > 200_000:
                self._cache, self._generation = {}, generation
            cache = self._cache
            missing = [t for t in terms if t not in cache]
        found = {t: count(t) for t in missing}
        with self._lock:
            if self._generation == generation:
                cache.update(found)
        return {t: found[t] if t in found else cache[t] for t in terms}

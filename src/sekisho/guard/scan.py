"""`scan(text)`: every sensitive span in a text, in original-text offsets, overlaps resolved."""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Iterable

from sekisho.guard.errors import GuardError
from sekisho.guard.findings import Finding
from sekisho.guard.recognizers import ALL_ENTITIES, DEFAULT_ENTITIES, recognizers_for
from sekisho.guard.textview import NormalizedText

MIN_SCORE = 0.5


def scan(text: str, *, entities: Iterable[str] | None = None, min_score: float = MIN_SCORE) -> list[Finding]:
    """Findings sorted by position. `entities=None` runs every rule-based recogniser; name
    "PERSON" explicitly to add GiNZA NER (GuardError if it is not installed)."""
    chosen = DEFAULT_ENTITIES if entities is None else tuple(entities)
    unknown = [e for e in chosen if e not in ALL_ENTITIES]
    if unknown:
        raise GuardError(f"unknown entity {unknown[0]!r}; known: {', '.join(ALL_ENTITIES)}")
    if not text:
        return []
    view = NormalizedText(text)
    found: list[Finding] = []
    for recognizer in recognizers_for(chosen):
        for c in recognizer.find(view):
            if c.score < min_score:
                continue
            start, end = view.original_span(c.start, c.end)
            found.append(Finding(recognizer.entity, start, end, text[start:end], c.score, recognizer.name))
    return resolve_overlaps(found)


def resolve_overlaps(findings: list[Finding]) -> list[Finding]:
    """Keep the most confident finding of any overlapping group (then the longest, then the
    earliest); the result does not overlap and is sorted by start."""
    ranked = sorted(findings, key=lambda f: (-f.score, -(f.end - f.start), f.start))
    starts: list[int] = []
    kept: dict[int, Finding] = {}
    for f in ranked:
        i = bisect_left(starts, f.start)
        if i > 0 and kept[starts[i - 1]].end > f.start:
            continue  # the previous kept finding runs into this one
        if i < len(starts) and starts[i] < f.end:
            continue  # the next kept finding starts inside this one
        insort(starts, f.start)
        kept[f.start] = f
    return [kept[s] for s in starts]

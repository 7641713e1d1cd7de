"""`scan(text)` and `scan_many(texts)` on the shipped recognisers, or on a given registry: every
sensitive span in original-text offsets, overlaps resolved."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

from sekisho.guard.findings import Finding
from sekisho.guard.registry import MAX_SCAN_CHARS, MIN_SCORE, RecognizerRegistry, default_registry, resolve_overlaps


@lru_cache(maxsize=1)
def _shipped() -> RecognizerRegistry:
    """The registry module-level scans use; private, so nothing can add to it."""
    return default_registry()


def scan(text: str, *, entities: Iterable[str] | None = None, min_score: float = MIN_SCORE,
         max_chars: int = MAX_SCAN_CHARS, deadline: float | None = None,
         registry: RecognizerRegistry | None = None) -> list[Finding]:
    """Findings sorted by position (see RecognizerRegistry.scan). `entities=None` runs every
    rule-based recogniser; name "PERSON" explicitly to add GiNZA NER (GuardError if it is not
    installed)."""
    return (registry or _shipped()).scan(text, entities=entities, min_score=min_score, max_chars=max_chars,
                                         deadline=deadline)


def scan_many(texts: Mapping[str, str], *, entities: Iterable[str] | None = None, min_score: float = MIN_SCORE,
              registry: RecognizerRegistry | None = None, max_chars: int = MAX_SCAN_CHARS,
              deadline: float | None = None) -> dict[str, list[Finding]]:
    """Findings per text of one conversation, numbers split across texts included (see
    RecognizerRegistry.scan_many)."""
    return (registry or _shipped()).scan_many(texts, entities=entities, min_score=min_score, max_chars=max_chars,
                                              deadline=deadline)


__all__ = ["MAX_SCAN_CHARS", "MIN_SCORE", "resolve_overlaps", "scan", "scan_many"]

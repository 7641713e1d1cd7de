"""Citation markers in a model's answer, resolved to the passages and documents they name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sekisho.store.records import Hit
from sekisho.text import CITATION_RE, citation_numbers


@dataclass(frozen=True)
class Citation:
    n: int  # the [n] in the answer
    chunk_id: str
    path: str  # source document path
    title: str
    location: str  # Location.label(): 'p.3 / 手続き > 必要書類'


def cited_numbers(text: str) -> list[int]:
    """Every passage number the text cites, in order of first appearance, without repeats:
    [1], [1][2], [1,2], [1、2], ［１］ and 【1】 all count."""
    seen: dict[int, None] = {}
    for m in CITATION_RE.finditer(text):
        for n in citation_numbers(m.group(1)):
            seen.setdefault(n, None)
    return list(seen)


def resolve_citations(text: str, hits: Sequence[Hit]) -> tuple[list[Citation], list[int]]:
    """(citations to real passages, numbers that point at no passage). The second list is what a
    model invented; it is reported, never silently dropped."""
    valid: list[Citation] = []
    invalid: list[int] = []
    for n in cited_numbers(text):
        if 1 <= n <= len(hits):
            hit = hits[n - 1]
            valid.append(Citation(n, hit.chunk.id, hit.document.path, hit.document.title, hit.chunk.location.label()))
        else:
            invalid.append(n)
    return valid, invalid

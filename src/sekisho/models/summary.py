"""An extractive summary: the sentences of a document that say most of what the document says,
quoted in document order with their passage cited, for the extractive backend (no model weights).

Each sentence is scored by how much of the rest of the document it shares (IDF-weighted content
units: kanji and katakana pairs, English words), a small lead bonus (official notices state their
subject first) and its overlap with the title; headings, and lines that end no sentence, count
less or not at all.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from sekisho.models.protocol import Passage
from sekisho.text import content_units, split_sentences

LEAD_BONUS = 0.15  # the first sentence of a document; halved for each later one
MIN_CHARS = 8


def summary_sentences(max_tokens: int) -> int:
    """How many sentences a summary of a `max_tokens` budget quotes: about 60 tokens each."""
    return max(2, min(12, max_tokens // 60))


def summarise(passages: Sequence[Passage], sentences: int) -> str:
    """The `sentences` most central sentences of `passages`, in order, as a Markdown list, each
    cited [n]."""
    found: list[tuple[Passage, int, str, frozenset[str]]] = []
    seen: set[str] = set()
    for passage in passages:
        for s, e in split_sentences(passage.text):
            text = passage.text[s:e].strip()
            line = text.lstrip("#").strip()
            # Overlapping chunks repeat their boundary sentences: each sentence counts once.
            if len(line) < MIN_CHARS or text.startswith("#") or line in passage.headings or text in seen:
                continue
            seen.add(text)
            found.append((passage, len(found), text, frozenset(content_units(text))))
    if not found:
        return ""
    documents = Counter(unit for *_, units in found for unit in units)
    total = len(found)

    def idf(unit: str) -> float:
        return math.log(1 + total / documents[unit])

    title_units = frozenset().union(*(content_units(p.title) for p in passages))
    scores = []
    for passage, index, text, units in found:
        if not units:
            scores.append(0.0)
            continue
        shared = sum(idf(u) * (documents[u] - 1) for u in units) / (total * math.sqrt(len(units)))
        lead = LEAD_BONUS / (2 ** index)
        title = len(units & title_units) / max(1, len(title_units))
        # A line that does not end a sentence (a letterhead, a date line) is context, not a statement.
        complete = 1.0 if text.rstrip("」』）)").endswith(("。", "！", "？", ".", "!", "?")) else 0.5
        scores.append((shared + lead + 0.1 * title) * complete)
    chosen = sorted(sorted(range(total), key=lambda i: -scores[i])[:sentences])
    return "\n".join(f"- {found[i][2]} [{found[i][0].n}]" for i in chosen)

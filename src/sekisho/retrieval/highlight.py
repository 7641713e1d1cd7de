"""Snippets: a window of a hit's original text around its matched terms, with the terms marked."""

from __future__ import annotations

from typing import Literal

from rich.markup import escape

from sekisho.retrieval.tokenize import analyzer
from sekisho.store import Hit

Style = Literal["plain", "rich"]

# Plain markers are Markdown bold: scripts and the web UI can render or strip them unambiguously.
_MARKS = {"plain": ("**", "**"), "rich": ("[bold yellow]", "[/bold yellow]")}


def matched_spans(hit: Hit) -> list[tuple[int, int]]:
    """Character spans in hit.chunk.text (the original text) whose index term the query matched.

    The original text is analysed directly (Sudachi folds width and case internally, keeping
    offsets in the input), so a query for ＡＢＣ marks "ABC" where the source wrote it."""
    wanted = set(hit.matched_terms)
    if not wanted:
        return []
    spans: list[tuple[int, int]] = []
    for t in analyzer().terms(hit.chunk.text):
        if t.term not in wanted:
            continue
        if spans and spans[-1][1] == t.start:  # adjacent words (マイナンバー|カード) read as one mark
            spans[-1] = (spans[-1][0], t.end)
        else:
            spans.append((t.start, t.end))
    return spans


def highlight(hit: Hit, *, width: int = 160, style: Style = "plain") -> str:
    """About `width` characters of the chunk around its densest run of matched terms, matched
    words marked (Markdown bold for "plain", Rich markup for "rich"), "…" where text was cut."""
    text = hit.chunk.text
    spans = matched_spans(hit)
    start = _window_start(spans, len(text), width)
    end = min(len(text), start + width)
    open_mark, close_mark = _MARKS[style]
    quote = escape if style == "rich" else (lambda s: s)
    out, pos = [], start
    for s, e in spans:
        if s < start or e > end:
            continue
        out.append(quote(text[pos:s]))
        out.append(open_mark + quote(text[s:e]) + close_mark)
        pos = e
    out.append(quote(text[pos:end]))
    snippet = "".join(out).replace("\n", " ")
    return ("…" if start > 0 else "") + snippet + ("…" if end < len(text) else "")


def _window_start(spans: list[tuple[int, int]], length: int, width: int) -> int:
    """Start of the window holding the most matched spans, backed off a little for context."""
    if length <= width or not spans:
        return 0
    best_start, best_count = spans[0][0], 0
    for i, (s, _) in enumerate(spans):
        count = sum(1 for s2, e2 in spans[i:] if e2 <= s + width)
        if count > best_count:
            best_start, best_count = s, count
    return max(0, min(best_start - width // 5, length - width))

"""proofread(text) -> findings, and apply_fixes(text, findings) -> corrected text."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable

from sekisho.proofread.analysis import analyze
from sekisho.proofread.checks import (
    long_sentence_findings,
    protected_spans,
    punctuation_findings,
    sentences,
    style_findings,
    width_findings,
)
from sekisho.proofread.lexicon import lexicon
from sekisho.proofread.model import Dictionary, Finding, Source
from sekisho.proofread.words import word_findings

DEFAULT_MAX_SENTENCE_CHARS = 80
_EMPTY = Dictionary()


def _organisation(text: str, dictionary: Dictionary) -> list[Finding]:
    if not dictionary.replace:
        return []
    by_find = {r.find: r for r in dictionary.replace}
    pattern = re.compile("|".join(re.escape(f) for f in sorted(by_find, key=len, reverse=True)))
    found = []
    for m in pattern.finditer(text):
        r = by_find[m.group()]
        if r.suggest == r.find:
            continue
        note = f"（{r.note}）" if r.note else ""
        message = f"「{r.find}」は「{r.suggest}」と書きます{note}（組織の用語）。 / Write 「{r.suggest}」 (organisation's term)."
        source = Source(f"組織の用語辞書 {dictionary.path}".strip(), r.note or "置換")
        found.append(Finding(f"organisation:{r.find}", "organisation", m.start(), m.end(), r.find, r.suggest, message,
                             source))
    return found


def _spans(text: str, words: Iterable[str]) -> list[tuple[int, int]]:
    spans = []
    for word in words:
        start = text.find(word)
        while start != -1:
            spans.append((start, start + len(word)))
            start = text.find(word, start + 1)
    return spans


class _Spans:
    """Merged, sorted spans answering "does [start, end) touch any of them" by bisection."""

    def __init__(self, spans: Iterable[tuple[int, int]]):
        merged: list[list[int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self._starts = [s for s, _ in merged]
        self._ends = [e for _, e in merged]

    def overlap(self, f: Finding) -> bool:
        i = bisect.bisect_left(self._starts, f.end) - 1  # the last span starting before f ends
        return i >= 0 and self._ends[i] > f.start


def proofread(text: str, *, dictionary: Dictionary | None = None) -> list[Finding]:
    """Every finding in `text`, in text order. Offsets index `text` as given; the text itself is
    never changed (NFKC is used for matching only)."""
    if not text.strip():
        return []
    dictionary = dictionary or _EMPTY
    lex = lexicon()
    tokens = analyze(text)
    found = sentences(text)
    limit = dictionary.max_sentence_chars or DEFAULT_MAX_SENTENCE_CHARS
    findings = [*word_findings(lex, tokens), *width_findings(lex, text), *punctuation_findings(lex, text),
                *style_findings(lex, tokens, found), *long_sentence_findings(lex, text, found, limit)]
    own = _organisation(text, dictionary)
    # Quoted names of laws and documents keep their notation; the organisation's own names are
    # never flagged; where the organisation has its own form for a word, that form wins.
    quiet = _Spans(protected_spans(text) + _spans(text, dictionary.keep))
    own_spans = _Spans((f.start, f.end) for f in own)
    kept = [f for f in findings
            if not dictionary.disabled(f.rule, f.family)
            and (f.family == "long-sentence" or not (quiet.overlap(f) or own_spans.overlap(f)))]
    kept += [f for f in own if not dictionary.disabled(f.rule, f.family) and not quiet.overlap(f)]
    kept.sort(key=lambda f: (f.start, -f.end, f.rule))
    return kept


def apply_fixes(text: str, findings: Iterable[Finding]) -> str:
    """`text` with each finding's suggestion put in its place. Advice-only findings (no
    suggestion) are skipped, and so is a finding overlapping one already applied."""
    out, at = [], 0
    for f in sorted((f for f in findings if f.suggestion is not None), key=lambda f: (f.start, f.end)):
        if f.start < at or text[f.start:f.end] != f.text:
            continue
        out.append(text[at:f.start])
        out.append(f.suggestion)
        at = f.end
    out.append(text[at:])
    return "".join(out)

"""Reversible masking: personal data becomes placeholders such as <マイナンバー_1> before a prompt
leaves for a model, and comes back in the answer for the same user only.

The mapping lives in a `MaskSession`: one per request, in memory, bound to the principal who
asked. Nothing here writes the mapping anywhere; the audit log receives the masked text (and, if
the caller wants, keyed hashes of the masked values).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sekisho.guard.findings import Finding, entity_label
from sekisho.identity import Principal
from sekisho.text import nfkc

# Models copy placeholders imperfectly: full-width brackets, a full-width underscore or digits,
# spaces inside. Restoration accepts those variants.
_PLACEHOLDER = re.compile(r"[<＜]\s*([^<>＜＞\s_＿]{1,20})\s*[_＿]\s*([0-9０-９]{1,4})\s*[>＞]")
_LONGEST_PLACEHOLDER = 32  # characters a stream may hold back while a placeholder might be arriving


def _value_key(entity: str, value: str) -> tuple[str, str]:
    """The same value written differently (全角/半角, spaces, hyphens) is the same value."""
    normal = nfkc(value)
    return entity, re.sub(r"[\s\-‐－ー−]", "", normal) if any(c.isdigit() for c in normal) else normal.strip()


def contains_placeholder(text: str) -> bool:
    return _PLACEHOLDER.search(text) is not None


@dataclass(frozen=True)
class MaskedSpan:
    """A span replaced in a text; `value` is NOT kept here: this record may be shown or audited."""

    entity: str
    start: int
    end: int
    placeholder: str


def non_overlapping(findings: Iterable[Finding]) -> list[Finding]:
    """Findings ordered by position; of overlapping ones the longest (then highest scoring) wins,
    so that a phone-number match inside a longer card number does not split it."""
    chosen: list[Finding] = []
    for f in sorted(findings, key=lambda f: (-(f.end - f.start), -f.score, f.start)):
        if all(f.end <= c.start or f.start >= c.end for c in chosen):
            chosen.append(f)
    return sorted(chosen, key=lambda f: f.start)


class MaskSession:
    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self._by_key: dict[tuple[str, str], str] = {}
        self._values: dict[str, str] = {}
        self._counters: Counter[str] = Counter()

    def placeholder(self, entity: str, value: str) -> str:
        key = _value_key(entity, value)
        existing = self._by_key.get(key)
        if existing is not None:
            return existing
        label = entity_label(entity)
        self._counters[label] += 1
        token = f"<{label}_{self._counters[label]}>"
        self._by_key[key] = token
        self._values[token] = value
        return token

    def mask(self, text: str, findings: Sequence[Finding]) -> tuple[str, list[MaskedSpan]]:
        """`text` with each finding's span replaced by its placeholder."""
        parts: list[str] = []
        spans: list[MaskedSpan] = []
        cursor = 0
        for f in non_overlapping(findings):
            token = self.placeholder(f.entity, text[f.start:f.end])
            parts.append(text[cursor:f.start])
            parts.append(token)
            spans.append(MaskedSpan(f.entity, f.start, f.end, token))
            cursor = f.end
        parts.append(text[cursor:])
        return "".join(parts), spans

    def mask_known(self, text: str) -> str:
        """Every literal occurrence of a value this session has seen, replaced by its placeholder:
        the audit copy of an output must not hold a value the model repeated, even where the
        output scan would not recognise it out of its original context."""
        for token, value in sorted(self._values.items(), key=lambda item: -len(item[1])):
            text = text.replace(value, token)
        return text

    def masked_values(self) -> list[tuple[str, str]]:
        """(placeholder, value) pairs, for keyed hashing; never for display or storage."""
        return list(self._values.items())

    def restore(self, text: str, principal: Principal) -> str:
        """Placeholders back to values, for the principal this session belongs to; anyone else
        gets the text with its placeholders."""
        if principal != self.principal or not self._values:
            return text

        def value_of(match: re.Match[str]) -> str:
            number = nfkc(match.group(2))
            return self._values.get(f"<{match.group(1)}_{int(number)}>", match.group(0))

        return _PLACEHOLDER.sub(value_of, text)

    def restore_stream(self, pieces: Iterable[str], principal: Principal) -> Iterator[str]:
        """Restore a token stream: a placeholder may arrive split across pieces, so text after an
        unclosed '<' is held back until it closes or grows too long to be a placeholder."""
        pending = ""
        for piece in pieces:
            pending += piece
            cut = max(pending.rfind("<"), pending.rfind("＜"))
            closed = cut == -1 or any(c in pending[cut:] for c in ">＞")
            if closed or len(pending) - cut > _LONGEST_PLACEHOLDER:
                yield self.restore(pending, principal)
                pending = ""
            elif cut > 0:
                yield self.restore(pending[:cut], principal)
                pending = pending[cut:]
        if pending:
            yield self.restore(pending, principal)

"""Reversible masking: personal data becomes placeholders such as <マイナンバー_1> before a prompt
leaves for a model, and comes back in the answer for the same user only.

The mapping lives in a `MaskSession`: one per request, in memory, bound to the principal who
asked. Nothing here writes the mapping anywhere; the audit log receives the masked text (and, if
the caller wants, keyed hashes of the masked values).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sekisho.guard.findings import Finding, entity_label
from sekisho.guard.spans import keep_disjoint
from sekisho.identity import Principal
from sekisho.text import nfkc

# Models copy placeholders imperfectly: full-width brackets, a full-width underscore or digits,
# spaces inside. Restoration accepts those variants. Up to 7 digits: a 4 MB request can hold
# well over 9,999 values of one kind, and <電話番号_10000> must come back too.
_PLACEHOLDER = re.compile(r"[<＜]\s*([^<>＜＞\s_＿]{1,20})\s*[_＿]\s*([0-9０-９]{1,7})\s*[>＞]")
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
    found = list(findings)
    order = sorted(range(len(found)), key=lambda i: (found[i].start - found[i].end, -found[i].score, found[i].start))
    return [found[i] for i in keep_disjoint([(f.start, f.end) for f in found], order)]


# Polynomial hashing of every window of a text, in numpy's wrapping uint64 arithmetic: an odd
# base is invertible modulo 2**64, so a window's hash is a difference of prefix sums times an
# inverse power. Collisions are possible and every hit is compared as a string.
_BASE = 0x9E3779B97F4A7C15
_BASE_INVERSE = pow(_BASE, -1, 1 << 64)
_MASK64 = (1 << 64) - 1


def _hash(value: str) -> int:
    total, power = 0, 1
    for ch in value:
        total = (total + ord(ch) * power) & _MASK64
        power = (power * _BASE) & _MASK64
    return total


def occurrences(text: str, values: Sequence[str]) -> list[tuple[int, int, int]]:
    """Every (start, end, value index) where one of `values` occurs in `text`, overlapping
    occurrences included: one vectorised pass per distinct value length, so linear in the text
    whatever the number of values (str.replace per value was O(values x text))."""
    by_length: dict[int, dict[int, list[int]]] = {}
    for index, value in enumerate(values):
        if value and len(value) <= len(text):
            by_length.setdefault(len(value), {}).setdefault(_hash(value), []).append(index)
    if not by_length:
        return []
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    size = len(codes)
    powers = np.full(size, _BASE, dtype=np.uint64)
    powers[0] = 1
    powers = np.cumprod(powers, dtype=np.uint64)
    inverse = np.full(size, _BASE_INVERSE, dtype=np.uint64)
    inverse[0] = 1
    inverse = np.cumprod(inverse, dtype=np.uint64)
    prefix = np.zeros(size + 1, dtype=np.uint64)
    np.cumsum(codes * powers, dtype=np.uint64, out=prefix[1:])
    found: list[tuple[int, int, int]] = []
    for length, table in by_length.items():
        windows = (prefix[length:] - prefix[:-length]) * inverse[:size - length + 1]
        wanted = np.fromiter(table, dtype=np.uint64, count=len(table))
        for start in np.flatnonzero(np.isin(windows, wanted)).tolist():
            for index in table[int(windows[start])]:
                if text.startswith(values[index], start):
                    found.append((start, start + length, index))
    return found


class MaskSession:
    """`labels` (entity -> Japanese label, e.g. a RecognizerRegistry's) name the placeholders of
    entities the built-in labels do not know; a finding's own label is used first."""

    def __init__(self, principal: Principal, *, labels: Mapping[str, str] | None = None) -> None:
        self.principal = principal
        self._labels = labels or {}
        self._by_key: dict[tuple[str, str], str] = {}
        self._values: dict[str, str] = {}
        self._counters: Counter[str] = Counter()

    def placeholder(self, entity: str, value: str, *, label: str | None = None) -> str:
        key = _value_key(entity, value)
        existing = self._by_key.get(key)
        if existing is not None:
            return existing
        label = label or self._labels.get(entity) or entity_label(entity)
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
            token = self.placeholder(f.entity, text[f.start:f.end], label=f.label)
            parts.append(text[cursor:f.start])
            parts.append(token)
            spans.append(MaskedSpan(f.entity, f.start, f.end, token))
            cursor = f.end
        parts.append(text[cursor:])
        return "".join(parts), spans

    def mask_known(self, text: str) -> str:
        """Every literal occurrence of a value this session has seen, replaced by its placeholder:
        the audit copy of an output must not hold a value the model repeated, even where the
        output scan would not recognise it out of its original context. Where occurrences
        overlap, the longer value wins (then the earlier masked, then the leftmost)."""
        tokens = list(self._values)
        values = [self._values[t] for t in tokens]
        found = occurrences(text, values)
        if not found:
            return text
        order = sorted(range(len(found)), key=lambda i: (found[i][0] - found[i][1], found[i][2], found[i][0]))
        parts: list[str] = []
        cursor = 0
        for i in keep_disjoint([(start, end) for start, end, _ in found], order):
            start, end, index = found[i]
            parts.append(text[cursor:start])
            parts.append(tokens[index])
            cursor = end
        parts.append(text[cursor:])
        return "".join(parts)

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
        """Restore a token stream (see `restoring`)."""
        restoring = self.restoring(principal)
        for piece in pieces:
            if out := restoring.feed(piece):
                yield out
        if out := restoring.flush():
            yield out

    def restoring(self, principal: Principal) -> StreamRestorer:
        """A restorer fed piece by piece: a placeholder may arrive split across pieces, so text
        after an unclosed '<' is held back until it closes or grows too long to be a placeholder."""
        return StreamRestorer(self, principal)


class StreamRestorer:
    def __init__(self, session: MaskSession, principal: Principal) -> None:
        self._session = session
        self._principal = principal
        self._pending = ""

    def feed(self, piece: str) -> str:
        pending = self._pending + piece
        cut = max(pending.rfind("<"), pending.rfind("＜"))
        closed = cut == -1 or any(c in pending[cut:] for c in ">＞")
        if closed or len(pending) - cut > _LONGEST_PLACEHOLDER:
            self._pending = ""
            return self._session.restore(pending, self._principal)
        self._pending = pending[cut:]
        return self._session.restore(pending[:cut], self._principal) if cut > 0 else ""

    def flush(self) -> str:
        pending, self._pending = self._pending, ""
        return self._session.restore(pending, self._principal) if pending else ""

"""An NFKC view of a text that remembers where each normalised character came from.

Recognisers match on the normalised view (full-width digits, ＠, （） become ASCII), but findings
must point into the original text, which is what users see and what masking rewrites. NFKC
usually maps one character to one character, so the common case is an identity offset map and
costs one C-level normalisation. A few characters change length (㈱ -> (株), ㍻ -> 平成, ｶﾞ -> ガ,
combining marks); only around those do we record explicit segments.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from functools import lru_cache

import numpy as np


def _nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s)


@lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray]:
    """(one_to_one, length_changing) over all code points.

    one_to_one[cp] is NFKC(chr(cp)) where that is a single character, else cp itself;
    length_changing[cp] is True where NFKC is not a one-to-one, in-place substitution (it expands,
    contracts, or composes with a neighbour). Built once (~0.2 s) from the running Python's Unicode
    tables so it stays right when unicodedata is upgraded. Applied with numpy because both
    unicodedata.normalize (on text that is not already NFKC) and a regex over a class this large
    run at only ~5-15M characters per second.
    """
    seconds: set[int] = set()  # second halves of canonical pairs: they compose with a left neighbour
    for cp in range(0x10000):
        decomposition = unicodedata.decomposition(chr(cp)) if not 0xD800 <= cp <= 0xDFFF else ""
        if decomposition and not decomposition.startswith("<"):
            parts = decomposition.split()
            if len(parts) == 2:
                seconds.add(int(parts[1], 16))
    one_to_one = np.arange(0x110000, dtype=np.uint32)
    changing = np.zeros(0x110000, dtype=bool)
    changing[list(seconds)] = True
    for cp in range(0x10000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        n = _nfkc(c)
        # Half-width ﾞ is not itself combining but normalises to one (U+3099), so it merges too.
        # (A BMP character normalising to one outside the BMP would not fit the 16-bit table.)
        if (len(n) != 1 or unicodedata.combining(c) or unicodedata.combining(n) or ord(n) in seconds
                or ord(n) > 0xFFFF):
            changing[cp] = True
        elif n != c:
            one_to_one[cp] = ord(n)
    changing[0x1160:0x1200] = True  # Hangul jamo compose algorithmically, outside the table
    # Outside the BMP, treat everything as possibly length-changing; such text is rare and the
    # careful path is still correct.
    changing[0x10000:] = True
    return one_to_one, changing


@lru_cache(maxsize=1)
def _bmp_tables() -> tuple[np.ndarray, np.ndarray]:
    """16-bit one_to_one and a per-character class: 0 unchanged, 1 one-to-one, 2 length-changing."""
    one_to_one, changing = _tables()
    bmp = np.arange(0x10000, dtype=np.uint32)
    kind = np.where(changing[:0x10000], 2, np.where(one_to_one[:0x10000] != bmp, 1, 0)).astype(np.uint8)
    return one_to_one[:0x10000].astype(np.uint16), kind


@lru_cache(maxsize=1)
def _full_kind() -> np.ndarray:
    one_to_one, changing = _tables()
    return np.where(changing, 2, np.where(one_to_one != np.arange(0x110000, dtype=np.uint32), 1, 0)).astype(np.uint8)


def _one_to_one_and_runs(text: str) -> tuple[str, list[tuple[int, int]]]:
    """The text with every one-to-one NFKC substitution applied (same length, same offsets),
    and the [start, end) runs of characters that still need real NFKC. Few numpy calls on the
    common paths: this runs once per request on short texts too."""
    raw = text.encode("utf-16-le", "surrogatepass")  # CPython encodes BMP text ~10x faster than UTF-32
    if len(raw) == 2 * len(text):
        one_to_one, kind_table = _bmp_tables()
        codes = np.frombuffer(raw, dtype=np.uint16)
        codec = "utf-16-le"
    else:  # characters outside the BMP: UTF-16 offsets would not be string offsets
        one_to_one, kind_table = _tables()[0], _full_kind()
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        codec = "utf-32-le"
    kinds = kind_table[codes]
    worst = int(kinds.max())
    if worst == 0:
        return text, []
    # One C-level decode beats splicing even a few thousand replacements in Python.
    mapped = one_to_one[codes].tobytes().decode(codec, "surrogatepass")
    if worst == 1:
        return mapped, []
    hits = np.flatnonzero(kinds == 2)
    breaks = np.flatnonzero(np.diff(hits) != 1)
    starts = np.concatenate(([hits[0]], hits[breaks + 1]))
    ends = np.concatenate((hits[breaks], [hits[-1]])) + 1
    return mapped, list(zip(starts.tolist(), ends.tolist()))


NUMERIC_MIN_DIGITS = 7  # 〒123-4567 and a 7-digit account number are the shortest
NUMERIC_PAD = 4  # room for what may precede the digits (〒 , T , TK) and follow them (lookaheads)
_JOINERS = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc ()+"
# Seven or more digits joined only by dashes, spaces, parentheses or +. The classes are disjoint,
# so the repetition cannot backtrack badly; starting with [0-9] lets the engine skip prose fast.
_NUMERIC_RUN = re.compile(f"[0-9](?:[{re.escape(_JOINERS)}]*[0-9]){{{NUMERIC_MIN_DIGITS - 1},}}")
_MERGE_GAP = 64


def _numeric_regions(text: str) -> list[tuple[int, int]]:
    regions: list[tuple[int, int]] = []
    n = len(text)
    for m in _NUMERIC_RUN.finditer(text):
        lo, hi = max(0, m.start() - NUMERIC_PAD), min(n, m.end() + NUMERIC_PAD)
        # Close regions are merged: one regex call over a few extra characters is cheaper than
        # one more call per recogniser.
        if regions and lo <= regions[-1][1] + _MERGE_GAP:
            regions[-1] = (regions[-1][0], hi)
        else:
            regions.append((lo, hi))
    return regions


class _AnchorRegistry:
    """The words and marks recognisers look for before running their full patterns (context
    words, prefecture names, @, 秘...). One alternation over all of them scans the text once;
    each anchor must start with a literal character so the alternation keeps the regex engine's
    fast first-character skip (a group or character class in front would defeat it), and none
    may define named groups (they are joined into one pattern)."""

    def __init__(self) -> None:
        self.patterns: dict[str, re.Pattern[str]] = {}
        self.version = 0
        self._combined: re.Pattern[str] | None = None

    def register(self, key: str, pattern: str) -> None:
        self.patterns[key] = re.compile(pattern)
        self.version += 1
        self._combined = None

    def find_all(self, text: str) -> dict[str, list[tuple[int, int]]]:
        if self._combined is None:
            self._combined = re.compile("|".join(p.pattern for p in self.patterns.values()))
        hits: dict[str, list[tuple[int, int]]] = {}
        search = self._combined.search
        m = search(text)
        while m is not None:
            start = m.start()
            # Which anchors match here (several may); searching on from start + 1 keeps an
            # anchor that begins inside another one.
            for key, pattern in self.patterns.items():
                own = pattern.match(text, start)
                if own is not None:
                    hits.setdefault(key, []).append(own.span())
            m = search(text, start + 1)
        return hits


_ANCHOR_REGISTRY = _AnchorRegistry()


def register_anchor(key: str, pattern: str) -> None:
    """Register a recogniser's anchor regex (literal first character) under a unique key."""
    _ANCHOR_REGISTRY.register(key, pattern)


class NormalizedText:
    """`text` (NFKC) plus the map from its offsets back to `original`."""

    __slots__ = ("original", "text", "_n_starts", "_n_ends", "_o_starts", "_o_ends", "_lower", "_numeric", "_anchors")

    def __init__(self, original: str) -> None:
        self.original = original
        self._lower: str | None = None
        self._numeric: list[tuple[int, int]] | None = None
        self._anchors: tuple[int, dict[str, list[tuple[int, int]]]] | None = None
        # Segments (normalised [n_start, n_end) <- original [o_start, o_end)) where the mapping is
        # not character-for-character; between them the offset delta is constant.
        self._n_starts: list[int] = []
        self._n_ends: list[int] = []
        self._o_starts: list[int] = []
        self._o_ends: list[int] = []
        if original.isascii():
            self.text = original
            return
        mapped, runs = _one_to_one_and_runs(original)
        self.text = self._build(original, mapped, runs) if runs else mapped

    def _add_segment(self, n_start: int, n_end: int, o_start: int, o_end: int) -> None:
        self._n_starts.append(n_start)
        self._n_ends.append(n_end)
        self._o_starts.append(o_start)
        self._o_ends.append(o_end)

    def _build(self, original: str, mapped: str, runs: list[tuple[int, int]]) -> str:
        parts: list[str] = []
        n_pos = 0
        o_pos = 0
        for start, end in runs:
            if start > o_pos:
                start -= 1  # the left neighbour may compose with what follows (か + ゙ -> が)
            if start > o_pos:
                plain = mapped[o_pos:start]
                parts.append(plain)
                n_pos += len(plain)
            piece = original[start:end]
            normalised = _nfkc(piece)
            per_char = [_nfkc(c) for c in piece]
            if "".join(per_char) == normalised:
                for offset, chunk in enumerate(per_char):
                    if len(chunk) != 1:
                        self._add_segment(n_pos, n_pos + len(chunk), start + offset, start + offset + 1)
                    n_pos += len(chunk)
            else:  # composition across characters: the whole piece maps as one unit
                self._add_segment(n_pos, n_pos + len(normalised), start, end)
                n_pos += len(normalised)
            parts.append(normalised)
            o_pos = end
        parts.append(mapped[o_pos:])
        return "".join(parts)

    @property
    def lower(self) -> str:
        """Lower-cased normalised text (same length: NFKC output lower-cases one-to-one for the
        scripts our context words use), for case-insensitive context look-ups."""
        if self._lower is None:
            lowered = self.text.lower()
            self._lower = lowered if len(lowered) == len(self.text) else self.text
        return self._lower

    def numeric_regions(self) -> list[tuple[int, int]]:
        """Spans of the normalised text around runs of digits (joined by dashes, spaces,
        parentheses or +) that hold at least NUMERIC_MIN_DIGITS digits, padded by NUMERIC_PAD.

        Every digit-shaped identifier (postal codes and bank accounts upwards) lives in such a
        run, and ordinary prose has few of them, so number recognisers search only these spans
        instead of running a regex each over the whole text. A joiner before the first digit
        (「(03)」「+81」) lies within the padding.
        """
        if self._numeric is None:
            self._numeric = _numeric_regions(self.text)
        return self._numeric

    def anchor_hits(self, key: str) -> list[tuple[int, int]]:
        """Spans where the anchor registered under `key` (see register_anchor) matches. All
        anchors are found in ONE pass over the text, however many recognisers use them."""
        if self._anchors is None or self._anchors[0] != _ANCHOR_REGISTRY.version:
            self._anchors = (_ANCHOR_REGISTRY.version, _ANCHOR_REGISTRY.find_all(self.text))
        return self._anchors[1].get(key, [])

    def _locate(self, i: int) -> tuple[int, bool]:
        """Index of the segment at or before normalised offset i, and whether i lies inside it."""
        k = bisect_right(self._n_starts, i) - 1
        while k >= 0 and self._n_starts[k] == self._n_ends[k] and self._n_starts[k] > i:
            k -= 1
        return k, k >= 0 and i < self._n_ends[k]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a normalised span [start, end) to the original text."""
        if not self._n_starts:
            return start, end
        k, inside = self._locate(start)
        if inside:
            o_start = self._o_starts[k]
        else:
            o_start = start + (self._o_ends[k] - self._n_ends[k] if k >= 0 else 0)
        if end <= start:
            return o_start, o_start
        last = end - 1
        k, inside = self._locate(last)
        if inside:
            o_end = self._o_ends[k]
        else:
            o_end = last + 1 + (self._o_ends[k] - self._n_ends[k] if k >= 0 else 0)
        return o_start, o_end

    def window(self, start: int, end: int, before: int, after: int = 0) -> str:
        """Lower-cased normalised context around a span, for context-word checks.

        The left side stops at the previous number of 3+ digits, so in a form such as
        「マイナンバー：123456789018　運転免許証番号：…」 a label only speaks for the number after it.
        """
        text = self.text
        left = _AFTER_LAST_NUMBER.match(text, max(0, start - before), start).group(1)
        return left.lower() + "\x00" + text[end:end + after].lower()


# Greedy: group 1 is what follows the LAST run of 3+ digits (or everything when there is none).
_AFTER_LAST_NUMBER = re.compile(r"(?:.*[0-9]{3})?[0-9]*(.*)", re.DOTALL)

"""The canonical view recognisers scan, and the map from its offsets back to the original text.

Recognisers match on the view, but findings must point into the original text, which is what
users see and what masking rewrites. The view is built in stages, each recording only where it
changed lengths (between such segments the offset delta is constant), and the maps compose:

1. NFKC with every digit folded to ASCII (full-width, circled ①, mathematical 𝟎, Arabic-Indic ٠,
   Eastern ۰, Devanagari...) and zero-width characters dropped (U+200B-U+200D, U+2060, U+FEFF,
   soft hyphen). One table lookup per character; NFKC usually maps one character to one, so the
   common case is an identity map. A few characters change length (㈱ -> (株), ㍻ -> 平成,
   ｶﾞ -> ガ, combining marks, dropped zero-width characters); only around those do we record
   segments.
2. Letter-spaced words closed up: 「東 京 都」「【社 外 秘】」 read as 東京都, 【社外秘】. Only runs of
   three or more single characters separated by single spaces, two of them Japanese at least,
   and never a space between two ASCII letters or digits (digits are stage 3's business).
3. Numbers put back together: kanji numerals read as digits (〇九〇, 一二三四..., 八千七百六十五 inside
   a longer number) and digits joined across the separators people use to slip a number past a
   filter (spaces, 、 , . / ・ dashes, a single line break, mixed). Joining is where false positives
   come from, so separators are only removed where the joined digits pass a recogniser's
   validator (check digits, the phone numbering plan: a `DigitRule`), never inside amounts
   (1,234,567), and a number already written in a layout the recognisers read (03-1234-5678) is
   left as written.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from functools import lru_cache
from typing import Mapping, Protocol, Sequence

import numpy as np

from sekisho.text import KANJI_DIGITS, kanji_number

# Invisible characters used to break a number or a word apart without changing how it looks.
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad"


@lru_cache(maxsize=1)
def _fold_table() -> dict[int, str | None]:
    """str.translate table: every non-ASCII character with a digit value -> its ASCII digit
    (NFKC leaves ٠١٢, ۰۱۲, ०१२, ❶ as they are), zero-width characters -> deleted."""
    table: dict[int, str | None] = {ord(c): None for c in ZERO_WIDTH}
    for cp in range(0x80, 0x110000):
        value = unicodedata.digit(chr(cp), None)
        if value is not None:
            table[cp] = str(value)
    return table


def _canon(s: str) -> str:
    """Stage 1 of the view for a piece of text: NFKC, digits to ASCII, zero-width dropped."""
    return unicodedata.normalize("NFKC", s).translate(_fold_table())


@lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray]:
    """(one_to_one, length_changing) over all code points.

    one_to_one[cp] is _canon(chr(cp)) where that is a single character, else cp itself;
    length_changing[cp] is True where _canon is not a one-to-one, in-place substitution (it expands,
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
        n = _canon(c)
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
    """The text with every one-to-one substitution of stage 1 applied (same length, same
    offsets), and the [start, end) runs of characters that still need the careful path. Few numpy calls on the
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
# Dashes seen in Japanese numbers after NFKC: ASCII hyphen (from －), the Unicode dashes NFKC
# keeps (‐ ‑ ‒ – — ― −), and the katakana prolonged sound mark ー typed for a hyphen.
DIGIT_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc"
_JOINERS = DIGIT_DASHES + " ()+"
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


class AnchorSet:
    """The words and marks a registry's recognisers look for before running their full patterns
    (context words, prefecture names, @, 秘...). One alternation over all of them scans the text
    once; each anchor must start with a literal character so the alternation keeps the regex
    engine's fast first-character skip (a group or character class in front would defeat it),
    and none may define named groups (they are joined into one pattern). Immutable: a registry
    builds a new one when its recognisers change."""

    def __init__(self, patterns: Mapping[str, str]) -> None:
        self.patterns = {key: re.compile(pattern) for key, pattern in patterns.items()}
        self._combined = re.compile("|".join(p.pattern for p in self.patterns.values())) if patterns else None

    def find_all(self, text: str) -> dict[str, list[tuple[int, int]]]:
        hits: dict[str, list[tuple[int, int]]] = {}
        if self._combined is None:
            return hits
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


NO_ANCHORS = AnchorSet({})


class DigitRule(Protocol):
    """What stage 3 asks the recognisers before joining digits across separators."""

    def valid(self, digits: str) -> bool:
        """Do these digits (separators removed) make an identifier some recogniser accepts?"""
        ...

    def layout(self, groups: tuple[str, ...]) -> bool:
        """Do the recognisers read a number written in these groups (03-1234-5678, 4-4-4)?"""
        ...


class _OffsetMap:
    """Where one stage's output differs in length from its input: segments (output [n_start,
    n_end) <- input [o_start, o_end)), sorted; between them the offset delta is constant. A
    deletion is a segment with n_start == n_end."""

    __slots__ = ("n_starts", "n_ends", "o_starts", "o_ends")

    def __init__(self) -> None:
        self.n_starts: list[int] = []
        self.n_ends: list[int] = []
        self.o_starts: list[int] = []
        self.o_ends: list[int] = []

    def add(self, n_start: int, n_end: int, o_start: int, o_end: int) -> None:
        self.n_starts.append(n_start)
        self.n_ends.append(n_end)
        self.o_starts.append(o_start)
        self.o_ends.append(o_end)

    def _locate(self, i: int) -> tuple[int, bool]:
        """Index of the last segment starting at or before output offset i (where several start
        at i, a deletion comes first, so this is the one that covers i if any), and whether i
        lies inside it."""
        k = bisect_right(self.n_starts, i) - 1
        return k, k >= 0 and i < self.n_ends[k]

    def _shift(self, k: int) -> int:
        return self.o_ends[k] - self.n_ends[k] if k >= 0 else 0

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """Map an output span [start, end) to the input; a span touching part of a segment
        covers all of it."""
        if not self.n_starts:
            return start, end
        k, inside = self._locate(start)
        o_start = self.o_starts[k] if inside else start + self._shift(k)
        if end <= start:
            return o_start, o_start
        k, inside = self._locate(end - 1)
        o_end = self.o_ends[k] if inside else end + self._shift(k)
        return o_start, o_end


def _apply(text: str, edits: list[tuple[int, int, str]]) -> tuple[str, _OffsetMap]:
    """`text` with sorted, non-overlapping edits (start, end, replacement) applied, and the map
    back. A same-length replacement maps character for character and needs no segment."""
    parts: list[str] = []
    offsets = _OffsetMap()
    pos = 0
    out = 0
    for start, end, new in edits:
        parts.append(text[pos:start])
        out += start - pos
        if len(new) != end - start:
            offsets.add(out, out + len(new), start, end)
        parts.append(new)
        out += len(new)
        pos = end
    parts.append(text[pos:])
    return "".join(parts), offsets


# --- stage 2: letter-spaced words -----------------------------------------------------------

_JAPANESE = re.compile("[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# A single space followed by a single character, at least twice: with the character before
# the first space, three or more single characters spaced apart (the last may be glued to what
# follows, as 秘 to 】).
_SPACED = re.compile(r" [^\s](?: [^\s])+")


def _spaced_edits(text: str) -> list[tuple[int, int, str]]:
    edits: list[tuple[int, int, str]] = []
    for m in _SPACED.finditer(text):
        first = m.start() - 1
        # Two Japanese characters at least: 「file é が」 is not a spaced-out word.
        if first < 0 or text[first].isspace() or len(_JAPANESE.findall(text, first, m.end())) < 2:
            continue
        for space in range(m.start(), m.end(), 2):
            left, right = text[space - 1], text[space + 1]
            if not (left.isascii() and left.isalnum() and right.isascii() and right.isalnum()):
                edits.append((space, space + 1, ""))
    return edits


# --- stage 3: numbers written to evade ------------------------------------------------------

KANJI_POSITIONAL = "〇零一二三四五六七八九"
_KANJI_UNITS = "十百千"
_TO_ASCII = str.maketrans({k: str(v) for k, v in KANJI_DIGITS.items()})
_DIGIT_CHARS = "0-9" + KANJI_POSITIONAL + _KANJI_UNITS
# Dashes, and the punctuation people put between digit groups.
_STRUCTURAL = DIGIT_DASHES + "、,./・"
# Between two digit groups: one or two spaces, or one separator or single line break with at
# most a space on either side. Not tabs: they separate table columns, not the parts of a number.
_CLUSTER = f"(?: {{1,2}}| ?(?:[{re.escape(_STRUCTURAL)}]|\\r?\\n) ?)"
# Seven or more digit characters with at most one cluster between any two.
_DIGIT_RUN = re.compile(f"[{_DIGIT_CHARS}](?:{_CLUSTER}?[{_DIGIT_CHARS}]){{{6},}}")
_DIGIT_GROUP = re.compile(f"[{_DIGIT_CHARS}]+")
_POSITIONAL = frozenset("0123456789" + KANJI_POSITIONAL)
# ASCII digit groups joined by one and the same dash: written as the recognisers read numbers,
# whatever stage 3 would decide (most runs in number-dense text; decided without Python work).
_DASHED = re.compile(f"[0-9]+(?:([{re.escape(DIGIT_DASHES)}])[0-9]+(?:\\1[0-9]+)*)?")


def _group_value(group: str) -> tuple[str, bool] | None:
    """The ASCII digits a group stands for, and whether reading it took kanji units (十百千);
    None for a mix that is no number (1十)."""
    if group.isascii():
        return group, False
    if all(ch in _POSITIONAL for ch in group):
        return group.translate(_TO_ASCII), False
    if any(ch.isascii() for ch in group):
        return None
    value = kanji_number(group)
    return (str(value), True) if value is not None else None


def _is_amount(groups: list[str], seps: list[str]) -> bool:
    """1,234,567 or 1.234.567: thousands separators are structure, not an evasion."""
    return (seps[0] in (",", ".") and all(s == seps[0] for s in seps) and 1 <= len(groups[0]) <= 3
            and all(len(g) == 3 for g in groups[1:]))


def _digit_edits(text: str, rule: DigitRule | None) -> list[tuple[int, int, str]]:
    edits: list[tuple[int, int, str]] = []
    for run in _DIGIT_RUN.finditer(text):
        if _DASHED.fullmatch(run.group()):
            continue
        spans = [m.span() for m in _DIGIT_GROUP.finditer(text, run.start(), run.end())]
        read = [_group_value(text[s:e]) for s, e in spans]
        if any(r is None for r in read):
            continue
        groups = [r[0] for r in read if r is not None]
        digits = "".join(groups)
        if len(digits) < NUMERIC_MIN_DIGITS:
            continue
        with_units = any(r[1] for r in read if r is not None)
        seps = [text[spans[i][1]:spans[i + 1][0]] for i in range(len(spans) - 1)]
        joinable = rule is not None and rule.valid(digits)
        # Kanji units (八千七百六十五) are read only inside a number that then validates: on their
        # own they are amounts and counts.
        if with_units and not joinable:
            continue
        folded = [(s, e, g) for (s, e), g in zip(spans, groups) if text[s:e] != g]
        if not seps:
            edits.extend(folded)
            continue
        if _is_amount(groups, seps):
            continue
        consistent = all(s == seps[0] for s in seps)
        as_written = consistent and (
            (len(seps[0]) == 1 and seps[0] in DIGIT_DASHES)
            or (seps[0] == " " and rule is not None and rule.layout(tuple(groups))))
        if as_written or not joinable:
            # 03-1234-5678 stays as written (the recognisers read its groups: 090-123-45678 is
            # deliberately no phone number); digits that validate nothing are left apart.
            edits.extend(folded)
            continue
        assert rule is not None
        if all(len(s) == 1 for s in seps) and rule.layout(tuple(groups)):
            joiner = "-"  # 090・8765・4321 keeps its groups: a grouped phone number needs no context
        else:
            joiner = ""
        boundaries = [(spans[i][1], spans[i + 1][0], joiner) for i in range(len(spans) - 1)]
        edits.extend(sorted(folded + boundaries))
    return edits


def is_digit_like(ch: str) -> bool:
    """A character stage 3 may read as (part of) a digit: any script's digit or a kanji numeral."""
    return ch.isdigit() or ch in KANJI_POSITIONAL or ch in _KANJI_UNITS


class NormalizedText:
    """`text`, the canonical view of `original` (see the module docstring), plus the map back.

    `anchors` are the anchor patterns of the recognisers that will scan this view; `digits` is
    their DigitRule (without one, stage 3 only reads kanji numerals, never joins separated digits);
    `bridges` are original spans read as one line break, where separate texts were concatenated
    (a number split across two messages, see RecognizerRegistry.scan_many).
    """

    __slots__ = ("original", "text", "_maps", "_lower", "_numeric", "_anchor_set", "_anchors")

    def __init__(self, original: str, *, anchors: AnchorSet = NO_ANCHORS, digits: DigitRule | None = None,
                 bridges: Sequence[tuple[int, int]] = ()) -> None:
        self.original = original
        self._lower: str | None = None
        self._numeric: list[tuple[int, int]] | None = None
        self._anchor_set = anchors
        self._anchors: dict[str, list[tuple[int, int]]] | None = None
        self._maps: list[_OffsetMap] = []  # stage by stage, first stage first
        text = original
        if bridges:
            text = self._stage(text, [(a, b, "\n") for a, b in bridges])
        if not text.isascii():
            mapped, runs = _one_to_one_and_runs(text)
            if runs:
                text = self._stage_careful(text, mapped, runs)
            else:
                text = mapped
            text = self._stage(text, _spaced_edits(text))
        self.text = self._stage(text, _digit_edits(text, digits))

    def _stage(self, text: str, edits: list[tuple[int, int, str]]) -> str:
        if not edits:
            return text
        out, offsets = _apply(text, edits)
        if offsets.n_starts:
            self._maps.append(offsets)
        return out

    def _stage_careful(self, original: str, mapped: str, runs: list[tuple[int, int]]) -> str:
        """Stage 1 where some characters change length: real NFKC around them."""
        parts: list[str] = []
        offsets = _OffsetMap()
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
            normalised = _canon(piece)
            per_char = [_canon(c) for c in piece]
            if "".join(per_char) == normalised:
                for offset, chunk in enumerate(per_char):
                    if len(chunk) != 1:
                        offsets.add(n_pos, n_pos + len(chunk), start + offset, start + offset + 1)
                    n_pos += len(chunk)
            else:  # composition across characters: the whole piece maps as one unit
                offsets.add(n_pos, n_pos + len(normalised), start, end)
                n_pos += len(normalised)
            parts.append(normalised)
            o_pos = end
        parts.append(mapped[o_pos:])
        self._maps.append(offsets)
        return "".join(parts)

    @property
    def lower(self) -> str:
        """Lower-cased view (same length: the view lower-cases one-to-one for the scripts our
        context words use), for case-insensitive context look-ups."""
        if self._lower is None:
            lowered = self.text.lower()
            self._lower = lowered if len(lowered) == len(self.text) else self.text
        return self._lower

    def numeric_regions(self) -> list[tuple[int, int]]:
        """Spans of the view around runs of digits (joined by dashes, spaces, parentheses or +)
        that hold at least NUMERIC_MIN_DIGITS digits, padded by NUMERIC_PAD.

        Every digit-shaped identifier (postal codes and bank accounts upwards) lives in such a
        run, and ordinary prose has few of them, so number recognisers search only these spans
        instead of running a regex each over the whole text. A joiner before the first digit
        (「(03)」「+81」) lies within the padding.
        """
        if self._numeric is None:
            self._numeric = _numeric_regions(self.text)
        return self._numeric

    def anchor_hits(self, key: str) -> list[tuple[int, int]]:
        """Spans where the anchor registered under `key` matches. All anchors of the AnchorSet
        are found in ONE pass over the text, however many recognisers use them."""
        if self._anchors is None:
            self._anchors = self._anchor_set.find_all(self.text)
        return self._anchors.get(key, [])

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a span [start, end) of the view to the original text."""
        for offsets in reversed(self._maps):
            start, end = offsets.source_span(start, end)
        return start, end

    def window(self, start: int, end: int, before: int, after: int = 0) -> str:
        """Lower-cased context around a span of the view, for context-word checks.

        The left side stops at the previous number of 3+ digits, so in a form such as
        「マイナンバー：123456789018　運転免許証番号：…」 a label only speaks for the number after it.
        """
        text = self.text
        left = _AFTER_LAST_NUMBER.match(text, max(0, start - before), start).group(1)
        return left.lower() + "\x00" + text[end:end + after].lower()


# Greedy: group 1 is what follows the LAST run of 3+ digits (or everything when there is none).
_AFTER_LAST_NUMBER = re.compile(r"(?:.*[0-9]{3})?[0-9]*(.*)", re.DOTALL)

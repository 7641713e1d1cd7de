"""The recogniser shape shared by every entity (presidio-style: pattern, validation, context)."""

from __future__ import annotations

import re
from typing import Callable, Iterator, NamedTuple, Protocol

from sekisho.guard.textview import DIGIT_DASHES, NormalizedText

# Separators seen in Japanese numbers in the view: the dashes (textview.DIGIT_DASHES), and a space.
DASHES = re.escape(DIGIT_DASHES)
SEP = f"[{DASHES}]"
SEP_OR_SPACE = f"[{DASHES} ]"
# A number must not be glued to a longer alphanumeric code on either side (ID12345..., 12-345...).
# LEAD consumes the first digit and then looks behind it: a pattern that starts with a character
# class lets the regex engine skip non-digits at C speed (a leading lookbehind defeats that and
# costs ~5x), so number patterns start with LEAD and count one digit fewer.
LEAD = f"[0-9](?<![0-9A-Za-z][0-9])(?<![0-9][{DASHES}][0-9])"
NUM_RIGHT = f"(?![0-9A-Za-z])(?![{DASHES}][0-9])"
# Words around a number that make it an order, invoice, shipment or product code rather than PII.
CODE_CONTEXT = (
    "注文", "伝票", "受付番号", "請求書番号", "請求番号", "管理番号", "追跡", "お問い合わせ番号",
    "問合せ番号", "送り状", "配送", "荷物", "会員番号", "契約番号", "証券番号", "品番", "型番", "商品番号",
    "isbn", "jan", "order", "invoice no", "tracking", "シリアル", "製造番号", "整理番号", "予約番号",
)


class Candidate(NamedTuple):
    """A match in NORMALISED coordinates, before mapping back to the original text (a tuple:
    recognisers create one per candidate, so it must be cheap)."""

    start: int
    end: int
    score: float


class Recognizer(Protocol):
    """What a RecognizerRegistry holds. `anchor` is a regex (literal first character) found in
    the registry's one-pass anchor scan and read back with view.anchor_hits(name), or None.
    Number recognisers may also offer `valid_digits(digits) -> bool` and
    `digit_layout(groups) -> bool`: the canonical view joins digits split by separators only
    where some recogniser's valid_digits accepts them (see textview.DigitRule)."""

    entity: str
    name: str
    anchor: str | None

    def find(self, view: NormalizedText) -> Iterator[Candidate]: ...


Assess = Callable[[re.Match[str], NormalizedText], "float | None"]
DigitCheck = Callable[[str], bool]
LayoutCheck = Callable[[tuple[str, ...]], bool]


class PatternRecognizer:
    """Regex candidates, a validator (check digits, ranges), and context words.

    `assess(match, view)` returns the base confidence of a candidate or None to reject it.
    A positive context word within the window raises the score to `context_score`; a negative
    word (order numbers, tracking numbers...) with no positive word rejects the candidate;
    `requires_context` candidates are only reported when a positive word is present, and then
    the pattern only runs near occurrences of the context words, not over the whole text.
    `numeric` recognisers (every match is a run of 7+ digits, see
    NormalizedText.numeric_regions) only search around such runs. Any recogniser may give an
    explicit `anchor` (e.g. "@" for e-mail) for the same effect: candidates must start within
    `anchor_ahead` chars before an anchor match or `before` chars after it.
    `valid_digits` / `digit_layout` (number recognisers): see Recognizer.
    """

    def __init__(
        self,
        *,
        entity: str,
        name: str,
        pattern: str,
        assess: Assess | None = None,
        base_score: float = 0.6,
        context: tuple[str, ...] = (),
        context_score: float = 0.95,
        negative: tuple[str, ...] = (),
        requires_context: bool = False,
        before: int = 24,
        after: int = 6,
        longest: int = 40,
        anchor: str | None = None,
        anchor_ahead: int | None = None,
        numeric: bool = False,
        group: int | str = 0,
        flags: int = 0,
        valid_digits: DigitCheck | None = None,
        digit_layout: LayoutCheck | None = None,
    ) -> None:
        self.entity = entity
        self.name = name
        self.pattern = re.compile(pattern, flags)
        self._assess = assess
        self.base_score = base_score
        # Context is matched in the lower-cased window, so the words are lower-cased too.
        self.context = tuple(w.lower() for w in context)
        self.negative = tuple(w.lower() for w in negative)
        self._context_re = re.compile("|".join(map(re.escape, self.context))) if self.context else None
        self._negative_re = re.compile("|".join(map(re.escape, self.negative))) if self.negative else None
        self.context_score = context_score
        self.requires_context = requires_context
        self.before = before
        self.after = after
        self.longest = longest  # the longest match, to size the regions scanned around anchors
        # How far before an anchor a match may start: by default far enough for a context word
        # right after the match; a prefecture anchor sits at most 3 characters after the start.
        self.anchor_ahead = longest + after if anchor_ahead is None else anchor_ahead
        self.group = group
        # The context words as written in the text (any case): where a context-bound recogniser
        # looks at all.
        self._context_anywhere = re.compile(words_pattern(self.context)) if requires_context else None
        if anchor is None and self._context_anywhere is not None and not numeric:
            anchor = self._context_anywhere.pattern
        self.anchor = anchor
        self.numeric = numeric
        self.valid_digits = valid_digits
        self.digit_layout = digit_layout

    def _matches(self, view: NormalizedText) -> Iterator[re.Match[str]]:
        if self.numeric:
            # A context-bound recogniser skips regions with no context word nearby.
            return in_numeric_regions(self.pattern, view, self._context_anywhere, self.before, self.after)
        if self.anchor is None:
            return self.pattern.finditer(view.text)
        return matches_near(self.pattern, view, view.anchor_hits(self.name), self.anchor_ahead, self.before,
                            self.longest)

    def find(self, view: NormalizedText) -> Iterator[Candidate]:
        for m in self._matches(view):
            score = self._assess(m, view) if self._assess else self.base_score
            if score is None:
                continue
            start, end = m.span(self.group)
            if self.context or self.negative:
                window = view.window(start, end, self.before, self.after)
                if self._context_re is not None and self._context_re.search(window):
                    score = max(score, self.context_score)
                elif self.requires_context or (self._negative_re is not None and self._negative_re.search(window)):
                    continue
            yield Candidate(start, end, score)


def words_pattern(words: tuple[str, ...]) -> str:
    """An alternation matching each word as written, lower-cased, capitalised or upper-cased.
    (re.IGNORECASE would do the same but makes the engine scan several times slower.)"""
    variants = dict.fromkeys(v for w in words for v in (w, w.lower(), w.capitalize(), w.upper()))
    return "|".join(map(re.escape, variants))


def matches_near(
    pattern: re.Pattern[str],
    view: NormalizedText,
    anchors: list[tuple[int, int]],
    ahead: int,
    behind: int,
    longest: int,
) -> Iterator[re.Match[str]]:
    """Matches of `pattern` (at most `longest` chars) that start within `ahead` chars before or
    `behind` chars after one of the `anchors` spans (from NormalizedText.anchor_hits). Scanning
    only these regions is what keeps context-bound recognisers cheap on long texts."""
    text = view.text
    regions: list[list[int]] = []
    for a_start, a_end in anchors:
        lo = max(0, a_start - ahead)
        hi = min(len(text), a_end + behind)
        if regions and lo <= regions[-1][1]:
            regions[-1][1] = max(regions[-1][1], hi)
        else:
            regions.append([lo, hi])
    for lo, hi in regions:
        pos = lo
        while pos < hi:
            # A match starts inside the region but may end past it; the search bound leaves room
            # for the longest match, and the match is then redone unbounded, since one cut short
            # by the bound could be wrongly valid (7 digits out of 8).
            m = pattern.search(text, pos, hi + longest)
            if m is None or m.start() >= hi:
                break
            full = pattern.match(text, m.start())
            if full is None:
                pos = m.start() + 1
                continue
            yield full
            pos = max(full.end(), m.start() + 1)


def in_numeric_regions(
    pattern: re.Pattern[str],
    view: NormalizedText,
    needs: re.Pattern[str] | None = None,
    before: int = 0,
    after: int = 0,
) -> Iterator[re.Match[str]]:
    """Matches of a digits-only pattern, searched only in the view's numeric regions (and, with
    `needs`, only in regions that have a match of it within `before`/`after` characters). A
    region ends NUMERIC_PAD characters after its last digit-or-joiner, past anything such a
    pattern can match or look ahead at, so bounding the search there cuts nothing short."""
    text = view.text
    for lo, hi in view.numeric_regions():
        if needs is not None and needs.search(text, max(0, lo - before), hi + after) is None:
            continue
        yield from pattern.finditer(text, lo, hi)


def group_lengths(*layouts: tuple[int, ...]) -> LayoutCheck:
    """A digit_layout accepting digit groups of these lengths (4-4-4 for a My Number...)."""
    accepted = frozenset(layouts)
    return lambda groups: tuple(map(len, groups)) in accepted


_NON_DIGIT = re.compile(r"[^0-9]+")


def digits_of(s: str) -> str:
    """The ASCII digits of a (normalised) match, separators dropped."""
    return _NON_DIGIT.sub("", s)

"""`RecognizerRegistry`: the recognisers one organisation scans with, their anchors and labels.

As in Presidio, recognisers are instances held by a registry, not module state filled as a side
effect of construction: `default_registry()` holds the shipped ones, an organisation adds its own
(社員番号, 職員番号 ...) with `add()` or through the policy file's [[recognizers]] tables
(guard/policy.py), and every scan reads only the registry it is given.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from sekisho.guard.errors import GuardError, ScanBudgetExceeded
from sekisho.guard.findings import ENTITY_LABELS, Finding
from sekisho.guard.recognizers import OPTIONAL, RULE_BASED, Recognizer
from sekisho.guard.spans import keep_disjoint
from sekisho.guard.textview import AnchorSet, NormalizedText, is_digit_like

MIN_SCORE = 0.5
# The most text one request may have scanned: the HTTP body limit (4 MB) worth of characters.
# Scanning is linear, about 1 s per MB of dense numbers, so this bounds a request's scan too.
MAX_SCAN_CHARS = 4 * 1024 * 1024
_CHECK_EVERY = 256  # candidates between two looks at the clock
# Entity names are identifiers in policies, audit records and JSON.
ENTITY_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,39}")
# A label becomes a placeholder such as <社員番号_1>, which restoration must read back (see
# masking._PLACEHOLDER): no brackets, underscores or spaces, at most 20 characters.
LABEL = re.compile(r"[^<>＜＞\s_＿]{1,20}")
# How far from the end of one text and the start of the next the two halves of a number may be
# for scan_many to read them as one (「前半は123456」「後半は789018」).
SPLIT_REACH = 12
# How much of each end of a long text scan_many reads when it joins the ends of the texts that
# may hold part of a number: a number written out with separators, however spread, fits.
END_CHARS = 160


@dataclass(frozen=True)
class _Plan:
    """What a scan of some entities needs: their recognisers, one anchor pass, the digit rule."""

    recognizers: tuple[Recognizer, ...]
    anchors: AnchorSet
    digits: "_DigitRule"


class _DigitRule:
    """textview.DigitRule from the recognisers' valid_digits / digit_layout."""

    def __init__(self, recognizers: Iterable[Recognizer]) -> None:
        self._valid = tuple(f for r in recognizers if (f := getattr(r, "valid_digits", None)) is not None)
        self._layout = tuple(f for r in recognizers if (f := getattr(r, "digit_layout", None)) is not None)

    def valid(self, digits: str) -> bool:
        return any(check(digits) for check in self._valid)

    def layout(self, groups: tuple[str, ...]) -> bool:
        return any(check(groups) for check in self._layout)


class RecognizerRegistry:
    """Recogniser instances, the entities they report and the entities' Japanese labels.

    Recognisers added `on_request` (GiNZA's PERSON) run only when their entity is named in
    `entities`; the others run on every scan with `entities=None`.
    """

    def __init__(self) -> None:
        self._recognizers: dict[str, tuple[Recognizer, bool]] = {}  # name -> (recogniser, on_request)
        self._labels: dict[str, str] = dict(ENTITY_LABELS)
        self._plans: dict[tuple[str, ...] | None, _Plan] = {}

    # --- contents ---------------------------------------------------------------------------

    def add(self, recognizer: Recognizer, *, label: str | None = None, on_request: bool = False) -> None:
        """Add a recogniser. A new entity needs its Japanese `label` (used in placeholders:
        <社員番号_1>); for a known entity the label may be left out (the pattern is added to it)."""
        name, entity = recognizer.name, recognizer.entity
        if name in self._recognizers:
            raise GuardError(f"recogniser {name!r} is already registered")
        if not ENTITY_NAME.fullmatch(entity):
            raise GuardError(f"entity {entity!r}: use capitals, digits and _ (e.g. EMPLOYEE_ID)")
        known = self._labels.get(entity)
        if label is None and known is None:
            raise GuardError(f"entity {entity!r} is new: give its Japanese label (e.g. 社員番号)")
        if label is not None:
            if not LABEL.fullmatch(label):
                raise GuardError(f"label {label!r}: 1-20 characters without <, >, _ or spaces (it becomes <{label}_1>)")
            if known is not None and known != label:
                raise GuardError(f"entity {entity!r} is already labelled {known!r}, not {label!r}")
        if recognizer.anchor is not None:
            re.compile(recognizer.anchor)  # fail here, not in the middle of a later scan
        self._recognizers[name] = (recognizer, on_request)
        self._labels.setdefault(entity, label or entity)
        self._plans.clear()

    def remove(self, name: str) -> Recognizer:
        """Remove the recogniser called `name` (GuardError if there is none)."""
        try:
            recognizer, _ = self._recognizers.pop(name)
        except KeyError:
            raise GuardError(f"no recogniser named {name!r} (known: {', '.join(self._recognizers)})") from None
        entity = recognizer.entity
        if entity not in ENTITY_LABELS and entity not in self.entities:
            del self._labels[entity]
        self._plans.clear()
        return recognizer

    def copy(self) -> "RecognizerRegistry":
        """A registry with the same recognisers, to add to without changing this one."""
        other = RecognizerRegistry()
        other._recognizers = dict(self._recognizers)
        other._labels = dict(self._labels)
        return other

    @property
    def recognizers(self) -> tuple[Recognizer, ...]:
        return tuple(r for r, _ in self._recognizers.values())

    @property
    def entities(self) -> tuple[str, ...]:
        """Every entity some recogniser reports, in the order they were added."""
        return tuple(dict.fromkeys(r.entity for r, _ in self._recognizers.values()))

    @property
    def default_entities(self) -> tuple[str, ...]:
        """The entities scanned when `entities=None` (all but the on-request ones)."""
        return tuple(dict.fromkeys(r.entity for r, on_request in self._recognizers.values() if not on_request))

    @property
    def labels(self) -> Mapping[str, str]:
        """Entity -> Japanese label: the built-in ones (including entities no recogniser here
        reports, such as COPYRIGHT_STYLE) and this registry's own."""
        return dict(self._labels)

    def label(self, entity: str) -> str:
        return self._labels.get(entity, entity)

    # --- scanning ---------------------------------------------------------------------------

    def scan(self, text: str, *, entities: Iterable[str] | None = None, min_score: float = MIN_SCORE,
             max_chars: int = MAX_SCAN_CHARS, deadline: float | None = None) -> list[Finding]:
        """Findings sorted by position, overlaps resolved, spans in `text`'s offsets.

        `entities=None` scans the default entities; name an on-request one (PERSON) to add it.
        `max_chars` and `deadline` (a time.monotonic() value) bound the work: ScanBudgetExceeded
        rather than an unbounded scan.
        """
        plan = self._plan(entities)
        _check_size(len(text), max_chars)
        if not text:
            return []
        return resolve_overlaps(self._find(NormalizedText(text, anchors=plan.anchors, digits=plan.digits), plan,
                                           min_score, deadline))

    def scan_many(self, texts: Mapping[str, str], *, entities: Iterable[str] | None = None,
                  min_score: float = MIN_SCORE, max_chars: int = MAX_SCAN_CHARS,
                  deadline: float | None = None) -> dict[str, list[Finding]]:
        """Findings per text key, for the texts of one conversation in order (messages of every
        role, content parts, stop strings, passages, the question).

        Each text is scanned on its own AND all of them joined by line breaks, so a number split
        across two texts (「前半は123456」「後半は789018」, or a user turn and an assistant turn) is
        read whole, with the few words between its halves skipped. Texts with no digit near
        either end cannot hold part of a split number, so the number's ends are also read with
        such texts left out: 「前半は090-8765」「承知しました」「4321です」 is one phone number. A
        finding that spans several texts comes back as one piece per text (same entity and
        recogniser, spans in that text's offsets, `detail["across"]` naming the texts).
        `max_chars` bounds the texts together.
        """
        plan = self._plan(entities)
        keys = list(texts)
        values = [texts[k] for k in keys]
        _check_size(sum(map(len, values)), max_chars)
        found = {k: self.scan(v, entities=entities, min_score=min_score, max_chars=max_chars, deadline=deadline)
                 for k, v in zip(keys, values)}
        if len(keys) < 2:
            return found
        whole = [_Segment(k, 0, v) for k, v in zip(keys, values)]
        for key, piece in self._scan_joined(whole, plan, min_score, deadline, across_only=False):
            found[key].append(piece)
        ends = _number_ends(keys, values)
        if len(ends) < len(whole) and len({s.key for s in ends}) > 1:
            # Only numbers that run from one text into another: anything inside one end was
            # found above, and an end cut out of a longer text may hold a cut number.
            for key, piece in self._scan_joined(ends, plan, min_score, deadline, across_only=True):
                found[key].append(piece)
        return {k: resolve_overlaps(v) if len(v) > 1 else v for k, v in found.items()}

    def _scan_joined(self, segments: list[_Segment], plan: _Plan, min_score: float, deadline: float | None, *,
                     across_only: bool) -> Iterator[tuple[str, Finding]]:
        """Findings of `segments` joined by line breaks (two between the ends of one text, which
        the canonical view does not join across), as (key, piece) in each text's own offsets."""
        starts, parts = [], []
        position = 0
        for i, segment in enumerate(segments):
            if i:
                gap = "\n\n" if segment.key == segments[i - 1].key else "\n"
                parts.append(gap)
                position += len(gap)
            starts.append(position)
            parts.append(segment.text)
            position += len(segment.text)
        bridges = _bridges(segments, starts)
        view = NormalizedText("".join(parts), anchors=plan.anchors, digits=plan.digits, bridges=bridges)
        for finding in self._find(view, plan, min_score, deadline):
            pieces = _pieces(finding, segments, starts, bridges)
            if len(pieces) < 2:
                if not across_only:
                    yield from pieces
                continue
            across = {"across": list(dict.fromkeys(key for key, _ in pieces))}
            for key, piece in pieces:
                yield key, Finding(piece.entity, piece.start, piece.end, piece.text, piece.score, piece.recognizer,
                                   detail=across, label=piece.label)

    def _plan(self, entities: Iterable[str] | None) -> _Plan:
        key = None if entities is None else tuple(entities)
        plan = self._plans.get(key)
        if plan is None:
            chosen = self.default_entities if key is None else key
            known = self.entities
            unknown = [e for e in chosen if e not in known]
            if unknown:
                raise GuardError(f"unknown entity {unknown[0]!r}; known: {', '.join(known)}")
            wanted = set(chosen)
            recognizers = tuple(r for r, _ in self._recognizers.values() if r.entity in wanted)
            anchors = AnchorSet({r.name: r.anchor for r in recognizers if r.anchor is not None})
            plan = self._plans[key] = _Plan(recognizers, anchors, _DigitRule(recognizers))
        return plan

    def _find(self, view: NormalizedText, plan: _Plan, min_score: float, deadline: float | None) -> list[Finding]:
        text = view.original
        found: list[Finding] = []
        countdown = _CHECK_EVERY
        for recognizer in plan.recognizers:
            _check_clock(deadline)
            label = self.label(recognizer.entity)
            for c in recognizer.find(view):
                countdown -= 1
                if not countdown:
                    _check_clock(deadline)
                    countdown = _CHECK_EVERY
                if c.score < min_score:
                    continue
                start, end = view.original_span(c.start, c.end)
                found.append(Finding(recognizer.entity, start, end, text[start:end], c.score, recognizer.name,
                                     label=label))
        return found


def default_registry() -> RecognizerRegistry:
    """A new registry with the shipped recognisers (PERSON on request only)."""
    registry = RecognizerRegistry()
    for recognizer in RULE_BASED:
        registry.add(recognizer)
    for recognizer in OPTIONAL:
        registry.add(recognizer, on_request=True)
    return registry


def resolve_overlaps(findings: Sequence[Finding]) -> list[Finding]:
    """Keep the most confident finding of any overlapping group (then the longest, then the
    earliest); the result does not overlap and is sorted by start."""
    order = sorted(range(len(findings)),
                   key=lambda i: (-findings[i].score, findings[i].start - findings[i].end, findings[i].start))
    return [findings[i] for i in keep_disjoint([(f.start, f.end) for f in findings], order)]


def _check_size(chars: int, max_chars: int) -> None:
    if chars > max_chars:
        raise ScanBudgetExceeded(f"guard: {chars:,} characters to scan, more than the {max_chars:,} one request may hold")


def _check_clock(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise ScanBudgetExceeded("guard: scanning ran past the request's time budget; send less text")


@dataclass(frozen=True)
class _Segment:
    """A stretch of one text in a joined view: text[key][offset:offset + len(text)]."""

    key: str
    offset: int
    text: str


def _number_ends(keys: list[str], values: list[str]) -> list[_Segment]:
    """The ends of the texts where a number may continue into another text: the first and last
    END_CHARS characters of each text that has a digit within SPLIT_REACH of that end."""
    ends = []
    for key, value in zip(keys, values):
        head = any(is_digit_like(c) for c in value[:SPLIT_REACH + 1])
        tail = any(is_digit_like(c) for c in value[-SPLIT_REACH - 1:])
        if len(value) <= 2 * END_CHARS:
            if head or tail:
                ends.append(_Segment(key, 0, value))
            continue
        if head:
            ends.append(_Segment(key, 0, value[:END_CHARS]))
        if tail:
            ends.append(_Segment(key, len(value) - END_CHARS, value[-END_CHARS:]))
    return ends


def _bridges(segments: list[_Segment], starts: list[int]) -> list[tuple[int, int]]:
    """Spans of the joined text between a number's end near the end of one text and a number's
    start near the beginning of the next (the line break between them included): read as one
    line break, they let the canonical view join the halves if the whole validates."""
    bridges = []
    for i in range(len(segments) - 1):
        if segments[i].key == segments[i + 1].key:
            continue  # two ends of one text: never one number
        left, right = segments[i].text, segments[i + 1].text
        tail = next((j for j in range(len(left) - 1, max(-1, len(left) - 1 - SPLIT_REACH), -1)
                     if is_digit_like(left[j])), None)
        head = next((j for j in range(min(len(right), SPLIT_REACH + 1)) if is_digit_like(right[j])), None)
        if tail is None or head is None or (tail == len(left) - 1 and head == 0):
            continue  # no number at the seam, or the plain line break already sits between them
        bridges.append((starts[i] + tail + 1, starts[i + 1] + head))
    return bridges


def _pieces(finding: Finding, segments: list[_Segment], starts: list[int],
            bridges: list[tuple[int, int]]) -> list[tuple[str, Finding]]:
    """A finding of the joined text as (key, finding) pieces in each text's own offsets, the
    bridged words between two halves of a number left out."""
    pieces = []
    for segment, base in zip(segments, starts):
        lo, hi = max(finding.start, base), min(finding.end, base + len(segment.text))
        for a, b in bridges:
            if a <= lo < b:
                lo = b
            if a < hi <= b:
                hi = a
        if lo < hi:
            start = segment.offset + lo - base
            pieces.append((segment.key, Finding(finding.entity, start, start + hi - lo,
                                                segment.text[lo - base:hi - base], finding.score,
                                                finding.recognizer, label=finding.label)))
    return pieces

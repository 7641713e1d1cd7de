"""Usage and feedback figures, computed from the audit log alone (no second source of truth).

    query = UsageQuery.parse(since="2026-12-01", until=None, by="app,model", timezone="Asia/Tokyo")
    report = usage_report(audit, query, viewer=principal)
    report.total.requests; report.rows; report.to_json(); report.to_csv()

Counted per governed request (the request path's one record per turn, kinds ask / chat / choice):
- requests; prompt and completion tokens; latency: p50 / p95 of `duration_s` (the whole governed
  request: retrieval, checks, model, audit append) over the requests that reached a model and
  concluded (ok or held), from a sketch whose quantiles are within 1% of the exact ones;
- refused: status blocked, for whatever reason; guard_blocked: those the policy blocked for what
  the guard found (reason `blocked:...`), not for the role; masked: values masked before a model
  saw them (distinct placeholders with action mask); held: outputs held for review; errors;
  cancelled (the reader left mid-stream);
- energy: joules summed where the record has a figure (measured or estimated); energy_unmeasured
  counts the records without one;
- 👍 / 👎: `feedback` records, the last one per answer and person counting (as the conversation
  store keeps it), attributed to the answer rated: its day, app, model, role, tags and user. A
  rating given after the period still counts for an answer inside it.

Dimensions: day (in the organisation's time zone), app (a task app's id; otherwise the door:
(conversation), (ask), (chat), (choice)), model (the backend used), role, tag (a request by a
principal holding several tags counts under each, so a table by tag does not add up to the total;
"" for none), user (pseudonymised: `user-` and 10 hex digits of a keyed hash, stable while the
audit signing key is; real names only when an admin or auditor asks, and that request is itself
audited).

Streaming: records are read a page at a time (AuditLog.records); what stays in memory is one tally
per group, one latency sketch each (a few hundred counters at most), and the ratings given since
the period began.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sekisho.audit.log import AuditLog
from sekisho.errors import Forbidden, InvalidInput
from sekisho.identity import Principal, Role
from sekisho.text import parse_day

# The request path's record kinds, one record per governed request (request/turn.py's Turn.kind).
REQUEST_KINDS = ("ask", "chat", "choice")
FEEDBACK_KIND = "feedback"
NAMES_KIND = "usage.names"  # the audit record of a report that showed real names
NAME_VIEWERS = frozenset({Role.ADMIN, Role.AUDITOR})

DIMENSIONS: dict[str, tuple[str, str]] = {
    "day": ("日付", "Day"),
    "app": ("アプリ", "App"),
    "model": ("モデル", "Model"),
    "role": ("役割", "Role"),
    "tag": ("タグ", "Tag"),
    "user": ("利用者", "User"),
}
# Requests that came through a door rather than a task app (app ids cannot hold parentheses).
DOORS: dict[str, str] = {
    "(conversation)": "会話 / Conversation",
    "(ask)": "質問 / Ask",
    "(chat)": "チャット API / Chat API",
    "(choice)": "選択 / Choice",
}


class UsageQueryError(InvalidInput):
    """A usage report asked for something it cannot be (a date that is not one, an unknown dimension)."""


@dataclass(frozen=True)
class Figures:
    """The figures of one group (or of everything)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    refused: int = 0
    guard_blocked: int = 0
    masked: int = 0
    held: int = 0
    errors: int = 0
    cancelled: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    energy_j: float = 0.0
    energy_unmeasured: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# Column labels, Japanese first: the CLI table, the page, and the order of CSV columns.
METRICS: dict[str, tuple[str, str]] = {
    "requests": ("依頼", "Requests"),
    "prompt_tokens": ("入力トークン", "Prompt tokens"),
    "completion_tokens": ("出力トークン", "Completion tokens"),
    "latency_p50_s": ("所要時間 p50 秒", "Latency p50 s"),
    "latency_p95_s": ("所要時間 p95 秒", "Latency p95 s"),
    "refused": ("拒否", "Refused"),
    "guard_blocked": ("ガード遮断", "Guard blocks"),
    "masked": ("マスク", "Masked values"),
    "held": ("確認待ち", "Held for review"),
    "errors": ("エラー", "Errors"),
    "cancelled": ("中断", "Cancelled"),
    "thumbs_up": ("高評価", "Thumbs up"),
    "thumbs_down": ("低評価", "Thumbs down"),
    "energy_j": ("電力量 J", "Energy J"),
    "energy_unmeasured": ("電力量なし", "Without energy"),
}
assert list(METRICS) == [f.name for f in fields(Figures)]


@dataclass(frozen=True)
class UsageQuery:
    """A period of whole days in `timezone`, both ends included (None: open), grouped `by`
    dimensions; `names` asks for real user names instead of pseudonyms."""

    since: date | None = None
    until: date | None = None
    by: tuple[str, ...] = ("day",)
    timezone: str = "Asia/Tokyo"
    names: bool = False

    def __post_init__(self) -> None:
        unknown = [d for d in self.by if d not in DIMENSIONS]
        if unknown:
            raise UsageQueryError(f"by: unknown dimension {unknown[0]!r} (choose from {', '.join(DIMENSIONS)})")
        if len(set(self.by)) != len(self.by):
            raise UsageQueryError(f"by: a dimension is named twice ({','.join(self.by)})")
        if self.since and self.until and self.since > self.until:
            raise UsageQueryError(f"since {self.since} is after until {self.until}")

    @classmethod
    def parse(cls, *, since: str | None, until: str | None, by: str | Sequence[str] | None, timezone: str,
              names: bool = False) -> UsageQuery:
        """From what a person typed: dates written any way `parse_day` reads (2026-12-01,
        令和8年12月1日, 2026年12月1日), dimensions comma-separated."""
        if isinstance(by, str):
            by = [part for part in (p.strip() for p in by.split(",")) if part]
        return cls(since=_day("since", since), until=_day("until", until), by=tuple(by or ("day",)),
                   timezone=timezone, names=names)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """The period in UTC: from midnight of `since` to midnight after `until`, in the zone."""
        start = datetime.combine(self.since, time(), self.zone).astimezone(UTC) if self.since else None
        end = (datetime.combine(self.until + timedelta(days=1), time(), self.zone).astimezone(UTC)
               if self.until else None)
        return start, end


def _day(name: str, text: str | None) -> date | None:
    if text is None or not text.strip():
        return None
    day = parse_day(text)
    if day is None:
        raise UsageQueryError(f"{name}: {text!r} is not a date (e.g. 2026-12-01, 令和8年12月1日)")
    return day


@dataclass(frozen=True)
class UsageRow:
    key: tuple[str, ...]  # one value per dimension of the table, in its order
    figures: Figures


@dataclass(frozen=True)
class ThumbsDown:
    """A 👎 with its reason (as audited: personal data already replaced by placeholders)."""

    rated_at: str  # UTC timestamp of the feedback record
    audit_seq: int  # the answer rated
    day: str
    app: str
    model: str
    user: str
    reason: str


@dataclass(frozen=True)
class UsageReport:
    query: UsageQuery
    total: Figures
    tables: dict[tuple[str, ...], list[UsageRow]]  # by dimensions -> rows, in key order
    reasons: list[ThumbsDown] | None  # newest first; None when the viewer is not an admin

    @property
    def rows(self) -> list[UsageRow]:
        return self.tables[self.query.by]

    def to_json(self) -> dict[str, Any]:
        q = self.query
        out: dict[str, Any] = {
            "since": q.since.isoformat() if q.since else None, "until": q.until.isoformat() if q.until else None,
            "timezone": q.timezone, "by": list(q.by), "users": "named" if q.names else "pseudonymised",
            "total": asdict(self.total),
            "rows": [{**dict(zip(q.by, row.key)), **asdict(row.figures)} for row in self.rows],
        }
        if self.reasons is not None:
            out["thumbs_down_reasons"] = [asdict(r) for r in self.reasons]
        return out

    def to_csv(self) -> str:
        """The rows as CSV: one column per dimension, then one per figure (METRICS' keys); an
        empty cell where a figure has no value (no latency without a concluded request)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow([*self.query.by, *METRICS])
        for row in self.rows:
            values = asdict(row.figures)
            writer.writerow([*row.key, *("" if values[m] is None else values[m] for m in METRICS)])
        return buffer.getvalue()


ROLES = {"admin": "管理者 / admin", "reviewer": "確認担当 / reviewer", "user": "一般利用者 / user",
         "auditor": "監査担当 / auditor"}
TAGS = {"": "（なし）/ none", "*": "*（すべて）/ all"}


def label(dimension: str, value: str, apps: Mapping[str, str] | None = None) -> str:
    """How a group's value reads on screen (Japanese first); the data keeps the value itself.
    `apps`: task app ids to their titles (the catalogue lives above this floor)."""
    return {"app": {**DOORS, **(apps or {})}, "role": ROLES, "tag": TAGS}.get(dimension, {}).get(value, value)


def usage_report(audit: AuditLog, query: UsageQuery, *, viewer: Principal,
                 tables: Sequence[tuple[str, ...]] = ()) -> UsageReport:
    """The figures of `query`'s period, grouped by `query.by` and by every grouping in `tables`,
    all in one pass over the log. Thumbs-down reasons are included for admins. Real names only
    for admins and auditors, and the request for them is appended to the log first."""
    if query.names:
        if viewer.role not in NAME_VIEWERS:
            raise Forbidden(f"usage: real user names are shown to admins and auditors only, not to role "
                            f"'{viewer.role}' (実名は管理者と監査者のみ)")
        audit.append(NAMES_KIND, {"principal": viewer.name, "role": str(viewer.role),
                                  "since": query.since.isoformat() if query.since else None,
                                  "until": query.until.isoformat() if query.until else None,
                                  "by": list(query.by)})
    groupings = list(dict.fromkeys([query.by, *tables]))
    start, end = query.bounds()
    ratings = _ratings(audit, start)
    zone = query.zone
    users: dict[str, str] = {}
    last_minute, last_day = "", ""  # the last UTC minute seen and its day in the zone

    def user(principal: str) -> str:
        if principal not in users:
            users[principal] = principal if query.names else pseudonym(audit, principal)
        return users[principal]

    def day(ts: str) -> str:
        # Every zone in use is offset from UTC by whole minutes, so the records of one UTC minute
        # share a day; they come in time order, so remembering the last minute is enough.
        nonlocal last_minute, last_day
        if ts[:16] != last_minute:
            last_minute, last_day = ts[:16], datetime.fromisoformat(ts).astimezone(zone).date().isoformat()
        return last_day

    total = _Tally()
    tallies: dict[tuple[str, ...], defaultdict[tuple[str, ...], _Tally]] = {g: defaultdict(_Tally) for g in groupings}
    reasons: list[ThumbsDown] = []
    for entry in audit.records(kinds=REQUEST_KINDS, since=start, until=end):
        record = entry.record or {}
        backend = record.get("backend") or {}
        tags = [str(t) for t in record.get("tags") or ()]
        values: dict[str, Sequence[str]] = {
            "day": (day(entry.ts),),
            "app": (_app(entry.kind, record),),
            "model": (str(backend.get("used") or ""),),
            "role": (str(record.get("role") or ""),),
            "tag": tags or ("",),
            "user": (user(str(record.get("principal") or "")),),
        }
        rated = ratings.pop(entry.seq, {})
        counted = _counted(record, [rating for rating, _, _ in rated.values()])
        total.add(counted)
        for g in groupings:
            for key in itertools.product(*(values[d] for d in g)):
                tallies[g][key].add(counted)
        for rating, reason, rated_at in rated.values():
            if rating < 0 and reason:
                reasons.append(ThumbsDown(rated_at, entry.seq, values["day"][0], values["app"][0],
                                          values["model"][0], values["user"][0], reason))
    reasons.sort(key=lambda r: r.rated_at, reverse=True)
    return UsageReport(
        query=query, total=total.figures(),
        tables={g: [UsageRow(key, tally.figures()) for key, tally in sorted(tallies[g].items())] for g in groupings},
        reasons=reasons if viewer.role == Role.ADMIN else None)


def pseudonym(audit: AuditLog, principal: str) -> str:
    """A stable stand-in for a principal's name: a keyed hash (the audit signing key's), so it
    cannot be reversed by hashing candidate names. 40 bits: among 100,000 users two share one
    with a probability under 0.5%."""
    return "user-" + audit.keyed_hash("sekisho-usage-pseudonym\x00" + principal)[:10]


def _app(kind: str, record: dict[str, Any]) -> str:
    if record.get("app"):
        return str(record["app"])
    return "(conversation)" if record.get("conversation_id") else f"({kind})"


def _ratings(audit: AuditLog, since: datetime | None) -> dict[int, dict[str, tuple[int, str, str]]]:
    """The last rating per answer and person given since the period began: {answer's seq:
    {principal: (rating, reason, ts)}}. Ratings always follow their answer, so none given
    before `since` can rate an answer inside the period."""
    ratings: dict[int, dict[str, tuple[int, str, str]]] = defaultdict(dict)
    for entry in audit.records(kinds=(FEEDBACK_KIND,), since=since):
        record = entry.record or {}
        seq, rating = record.get("audit_seq"), record.get("rating")
        if isinstance(seq, int) and rating in (1, -1):
            ratings[seq][str(record.get("principal") or "")] = (rating, str(record.get("reason") or ""), entry.ts)
    return ratings


class _Counted(NamedTuple):
    """What one request record adds to each of its groups, worked out once."""

    prompt_tokens: int
    completion_tokens: int
    latency: int | None  # the sketch bucket of its duration; None when it did not conclude
    refused: bool
    guard_blocked: bool
    masked: int
    held: bool
    error: bool
    cancelled: bool
    joules: float | None
    thumbs_up: int
    thumbs_down: int


def _counted(record: dict[str, Any], ratings: list[int]) -> _Counted:
    tokens = record.get("tokens") or {}
    status = record.get("status")
    duration = record.get("duration_s")
    concluded = status in ("ok", "held") and isinstance(duration, (int, float))
    joules = (record.get("energy") or {}).get("joules")
    return _Counted(
        prompt_tokens=int(tokens.get("prompt") or 0), completion_tokens=int(tokens.get("completion") or 0),
        latency=_Sketch.index_of(float(duration)) if concluded else None,
        refused=status == "blocked",
        guard_blocked=status == "blocked" and str(record.get("reason") or "").startswith("blocked:"),
        # One masked value can be found in several places (the question, and the prompt that
        # carries it): its placeholder counts it once.
        masked=len({f.get("placeholder") for f in record.get("findings") or ()
                    if f.get("action") == "mask" and f.get("placeholder")}),
        held=status == "held", error=status == "error", cancelled=status == "cancelled",
        joules=float(joules) if isinstance(joules, (int, float)) else None,
        thumbs_up=ratings.count(1), thumbs_down=ratings.count(-1))


class _Tally:
    """One group's running counts."""

    __slots__ = ("cancelled", "completion_tokens", "energy_j", "energy_unmeasured", "errors", "guard_blocked",
                 "held", "latency", "masked", "prompt_tokens", "refused", "requests", "thumbs_down", "thumbs_up")

    def __init__(self) -> None:
        self.requests = self.prompt_tokens = self.completion_tokens = 0
        self.refused = self.guard_blocked = self.masked = self.held = self.errors = self.cancelled = 0
        self.thumbs_up = self.thumbs_down = self.energy_unmeasured = 0
        self.energy_j = 0.0
        self.latency = _Sketch()

    def add(self, c: _Counted) -> None:
        self.requests += 1
        self.prompt_tokens += c.prompt_tokens
        self.completion_tokens += c.completion_tokens
        if c.latency is not None:
            self.latency.add(c.latency)
        self.refused += c.refused
        self.guard_blocked += c.guard_blocked
        self.masked += c.masked
        self.held += c.held
        self.errors += c.error
        self.cancelled += c.cancelled
        if c.joules is None:
            self.energy_unmeasured += 1
        else:
            self.energy_j += c.joules
        self.thumbs_up += c.thumbs_up
        self.thumbs_down += c.thumbs_down

    def figures(self) -> Figures:
        empty = self.latency.count == 0
        return Figures(
            requests=self.requests, prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
            latency_p50_s=None if empty else self.latency.quantile(0.50),
            latency_p95_s=None if empty else self.latency.quantile(0.95),
            refused=self.refused, guard_blocked=self.guard_blocked, masked=self.masked, held=self.held,
            errors=self.errors, cancelled=self.cancelled, thumbs_up=self.thumbs_up, thumbs_down=self.thumbs_down,
            energy_j=round(self.energy_j, 3), energy_unmeasured=self.energy_unmeasured)


class _Sketch:
    """Quantiles in bounded memory (DDSketch, Masson et al., VLDB 2019): each value is counted in a
    logarithmic bucket 2% wide, and a quantile is read back as its bucket's centre, within 1% of
    the value of that rank. Durations from 0.1 ms to a day fit in about 800 buckets; a month of
    requests in a group takes a few hundred. A value's bucket is worked out once (`index_of`) and
    counted in every group it belongs to."""

    ALPHA = 0.01
    GAMMA = (1 + ALPHA) / (1 - ALPHA)
    LOG_GAMMA = math.log(GAMMA)
    SMALLEST = 1e-4  # the audit log rounds durations to 0.1 ms; anything under counts as zero
    ZERO = -(10**9)  # the bucket of zero, below every other

    __slots__ = ("buckets", "count")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = defaultdict(int)
        self.count = 0

    @classmethod
    def index_of(cls, value: float) -> int:
        return cls.ZERO if value < cls.SMALLEST else math.ceil(math.log(value) / cls.LOG_GAMMA)

    def add(self, index: int) -> None:
        self.count += 1
        self.buckets[index] += 1

    def quantile(self, q: float) -> float:
        """The q-quantile by nearest rank (the ceil(q * count)-th smallest value added, the first
        for q = 0), within 1% and then rounded to five significant digits; 0.0 when empty."""
        rank = max(0, math.ceil(q * self.count) - 1)  # 0-based
        seen, index = 0, self.ZERO
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if rank < seen:
                break
        return 0.0 if index == self.ZERO else float(f"{2 * self.GAMMA ** index / (self.GAMMA + 1):.5g}")

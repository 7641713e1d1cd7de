"""Quotas: requests per minute, tokens per day and tokens per month, per API key, per user
(principal name) and per role; counted per principal in the access database, so the counts hold
across worker processes and restarts.

    [quotas]
    timezone = "Asia/Tokyo"                 # days and months begin at midnight here
    [quotas.roles.user]                     # each member of the role
    requests_per_minute = 30
    tokens_per_day = 200000
    tokens_per_month = 3000000
    [quotas.users."key:ab12cd34:alice"]     # one principal, by name
    tokens_per_day = 50000
    # and a key's own: `sekisho keys create --tokens-per-day 10000`, or POST /api/keys

The tightest limit that applies wins; a quota nobody set is unlimited.

Where they hold, for every door at once:

- Admission: `Runtime.admitted`, which every governed door passes before its response starts
  (so a stream is refused with a real 429), calls `Quotas.admit`: one write transaction that
  refuses when the day's or the month's tokens are used up, then counts the request into its
  minute and refuses when that passes the limit. On SQLite the transaction is BEGIN IMMEDIATE,
  so two workers admitting at once take turns; on PostgreSQL the count is one row-locked upsert
  returning the new value. Either way the last request of a minute is taken once. A request
  (an HTTP call: a chat completion, an answer, a conversation turn, an app run) counts once
  however many governed calls it makes.
- Charging: the request path's one exit (`RequestPath._record`) charges the tokens each governed
  call used (prompt + completion; of a stream its reader left, the prompt and what was made) to
  the day and the month of the moment it ends.

Checked before, charged after: a request admitted with tokens left may use more than are left,
so use can pass a token limit by what the requests in flight at that moment use — for a client
sending one request at a time, by at most one request. Windows are calendar ones (a minute
counts from :00), so up to twice the per-minute limit can pass within one minute across a
boundary; the per-key rate limit (`server.rate_limit_per_minute`, a token bucket) still holds.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any
from zoneinfo import ZoneInfo

from sekisho.config import ConfigError, QuotasConfig
from sekisho.db import Database
from sekisho.errors import NotFound, SekishoError
from sekisho.identity import Principal, Role
from sekisho.server.keys import ApiKey, KeyStore

QUOTAS = ("requests_per_minute", "tokens_per_day", "tokens_per_month")
LABELS = {
    "requests_per_minute": "1分あたりのリクエスト数 (requests per minute)",
    "tokens_per_day": "1日あたりのトークン数 (tokens per day)",
    "tokens_per_month": "1か月あたりのトークン数 (tokens per month)",
}
_PERIOD = {"requests_per_minute": "minute", "tokens_per_day": "day", "tokens_per_month": "month"}
_PRUNE_EVERY_S = 60.0  # ended windows are deleted at most this often per process


class QuotaExceeded(SekishoError):
    """A quota is used up: 429 with Retry-After (the seconds until it resets) and one line naming
    the quota, its limit and when it resets. OpenAI's codes: `rate_limit_exceeded` for the
    requests per minute, `insufficient_quota` for tokens (SDKs retry the first, not the second
    once Retry-After is past two minutes)."""

    http_status = 429

    def __init__(self, use: QuotaUse, now: float) -> None:
        reset = use.resets_at
        verb = "に達しました" if use.name == "requests_per_minute" else "を使い切りました"
        super().__init__(f"{use.label} {use.limit:,} {verb}。リセット: {reset:%Y-%m-%d %H:%M} {reset.tzname()}")
        self.use = use
        self.code = "rate_limit_exceeded" if use.name == "requests_per_minute" else "insufficient_quota"
        self.headers = {"Retry-After": str(max(1, math.ceil(reset.timestamp() - now)))}


@dataclass(frozen=True)
class Limit:
    value: int
    scope: str  # where the limit comes from: "key", "user" or "role"


@dataclass(frozen=True)
class QuotaUse:
    """One quota of one principal now: what was used in its current window and its limit."""

    name: str  # "requests_per_minute" | "tokens_per_day" | "tokens_per_month"
    used: int
    limit: int | None  # None: unlimited
    scope: str | None  # "key" | "user" | "role"; None when unlimited
    resets_at: datetime  # the end of the current window, in the organisation's time zone

    @property
    def label(self) -> str:
        return LABELS[self.name]

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.used >= self.limit

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "used": self.used, "limit": self.limit, "scope": self.scope,
                "remaining": None if self.limit is None else max(0, self.limit - self.used),
                "resets_at": self.resets_at.isoformat(timespec="seconds")}


@dataclass(frozen=True)
class Usage:
    """A principal's quotas now, and its requests today and this month."""

    principal: str
    role: str
    key_id: str | None
    quotas: tuple[QuotaUse, ...]
    requests_today: int
    requests_this_month: int

    def quota(self, name: str) -> QuotaUse:
        return next(q for q in self.quotas if q.name == name)


@dataclass(frozen=True)
class _Window:
    name: str  # the row's period: "minute:2026-12-07T01:42" (UTC), "day:2026-12-07", "month:2026-12"
    ends: datetime

    @property
    def end(self) -> int:
        """As the row keeps it: epoch seconds (windows end on a whole second)."""
        return int(self.ends.timestamp())


class Quotas:
    def __init__(self, db: Database, config: QuotasConfig, *, timezone: str = "Asia/Tokyo",
                 clock: Callable[[], float] = time.time) -> None:
        for role in config.roles:
            if role not in {r.value for r in Role}:
                raise ConfigError(f"quotas.roles.{role}: no such role (roles: {', '.join(r.value for r in Role)})")
        self.db = db
        self.config = config
        self.timezone = timezone
        self.zone = ZoneInfo(timezone)
        self.clock = clock  # injectable: the tests move time to the next day
        self._pruned = -math.inf
        self._lock = threading.Lock()

    # --- the limits that apply ----------------------------------------------------------------

    def limits(self, principal: str, role: str, key: ApiKey | None) -> dict[str, Limit | None]:
        """Per quota, the tightest limit among the key's own, the user's and the role's."""
        sources = [("key", key.limits if key is not None else None), ("user", self.config.users.get(principal)),
                   ("role", self.config.roles.get(role))]
        out: dict[str, Limit | None] = {}
        for name in QUOTAS:
            found = [Limit(value, scope) for scope, limits in sources
                     if limits is not None and (value := getattr(limits, name)) is not None]
            out[name] = min(found, key=lambda limit: limit.value) if found else None
        return out

    # --- windows ------------------------------------------------------------------------------

    def _windows(self, now: float) -> dict[str, _Window]:
        """The current minute, day and month. The minute is named in UTC (a local minute repeats
        when clocks go back); days and months begin at local midnight (date arithmetic, so a
        day is a calendar day also where clocks change)."""
        utc_minute = datetime.fromtimestamp(now, UTC).replace(second=0, microsecond=0)
        today = datetime.fromtimestamp(now, self.zone).date()
        first = today.replace(day=1)
        next_month = (first + timedelta(days=32)).replace(day=1)
        return {
            "minute": _Window(f"minute:{utc_minute:%Y-%m-%dT%H:%M}",
                              (utc_minute + timedelta(minutes=1)).astimezone(self.zone)),
            "day": _Window(f"day:{today:%Y-%m-%d}", self._midnight(today + timedelta(days=1))),
            "month": _Window(f"month:{first:%Y-%m}", self._midnight(next_month)),
        }

    def _midnight(self, day: date) -> datetime:
        return datetime.combine(day, clock_time(0), tzinfo=self.zone)

    # --- admission and charging ---------------------------------------------------------------

    def admit(self, principal: Principal, key: ApiKey | None) -> None:
        """Count one request of `principal`, or raise QuotaExceeded (nothing counted) when its
        tokens for the day or the month are used up or its minute is full."""
        now = self.clock()
        windows = self._windows(now)
        limits = self.limits(principal.name, principal.role.value, key)
        with self.db.write() as conn:
            self._prune(conn, now)
            conn.execute("INSERT INTO quota_principals (principal, role, key_id, seen) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (principal) DO UPDATE SET role = excluded.role, key_id = excluded.key_id, "
                         "seen = excluded.seen", (principal.name, principal.role.value, key.id if key else None, now))
            tokens = dict(conn.execute(
                "SELECT period, tokens FROM quota_usage WHERE principal = ? AND period IN (?, ?)",
                (principal.name, windows["day"].name, windows["month"].name)).fetchall())
            spent = [self._use(name, tokens.get(windows[_PERIOD[name]].name, 0), limits[name], windows)
                     for name in ("tokens_per_day", "tokens_per_month")]
            if exhausted := [use for use in spent if use.exhausted]:
                # The one that lifts last: asking again before then is refused anyway.
                raise QuotaExceeded(max(exhausted, key=lambda use: use.resets_at), now)
            requests = self._count_request(conn, principal.name, windows)
            minute = self._use("requests_per_minute", requests, limits["requests_per_minute"], windows)
            if minute.limit is not None and requests > minute.limit:
                raise QuotaExceeded(minute, now)  # the transaction rolls back: the refusal is not counted

    def charge(self, principal: Principal, tokens: int) -> None:
        """Add the tokens a governed call used to the principal's day and month."""
        if tokens <= 0:
            return
        windows = self._windows(self.clock())
        with self.db.write() as conn:
            conn.executemany(
                "INSERT INTO quota_usage (principal, period, ends, requests, tokens) VALUES (?, ?, ?, 0, ?) "
                "ON CONFLICT (principal, period) DO UPDATE SET tokens = quota_usage.tokens + excluded.tokens",
                [(principal.name, w.name, w.end, tokens) for w in (windows["day"], windows["month"])])

    @staticmethod
    def _count_request(conn: Any, principal: str, windows: dict[str, _Window]) -> int:
        """One more request in the minute, the day and the month; returns the minute's count."""
        upsert = ("INSERT INTO quota_usage (principal, period, ends, requests, tokens) VALUES (?, ?, ?, 1, 0) "
                  "ON CONFLICT (principal, period) DO UPDATE SET requests = quota_usage.requests + 1")
        minute = windows["minute"]
        count = conn.execute(upsert + " RETURNING requests", (principal, minute.name, minute.end)).fetchone()[0]
        conn.executemany(upsert, [(principal, w.name, w.end) for w in (windows["day"], windows["month"])])
        return count

    def _prune(self, conn: Any, now: float) -> None:
        """Windows that ended are deleted, at most once a minute per process (inside a write the
        caller already holds)."""
        with self._lock:
            if now - self._pruned < _PRUNE_EVERY_S:
                return
            self._pruned = now
        conn.execute("DELETE FROM quota_usage WHERE ends <= ?", (now,))

    @staticmethod
    def _use(name: str, used: int, limit: Limit | None, windows: dict[str, _Window]) -> QuotaUse:
        return QuotaUse(name, used, limit.value if limit else None, limit.scope if limit else None,
                        windows[_PERIOD[name]].ends)

    # --- what the user and the admins see -----------------------------------------------------

    def usage(self, principal: str, role: str, key: ApiKey | None) -> Usage:
        """`principal`'s quotas in the current windows."""
        return self._usages([(principal, role, key)])[0]

    def everyone(self, keys: KeyStore) -> list[Usage]:
        """Every principal with use this month, and every active key (unused ones at zero), most
        tokens this month first."""
        month = self._windows(self.clock())["month"].name
        with self.db.read() as conn:
            seen = conn.execute("SELECT p.principal, p.role, p.key_id FROM quota_principals p "
                                "JOIN quota_usage u ON u.principal = p.principal AND u.period = ?", (month,)).fetchall()
        by_id = {k.id: k for k in keys.list()}
        who = {name: (name, role, by_id.get(key_id) if key_id else None) for name, role, key_id in seen}
        for key in by_id.values():
            name = key.principal().name
            if key.active and name not in who:
                who[name] = (name, key.role.value, key)
        usages = self._usages(list(who.values()))
        return sorted(usages, key=lambda u: (-u.quota("tokens_per_month").used, u.principal))

    def find(self, name: str, keys: KeyStore) -> Usage:
        """One principal's usage by principal name or key id (the CLI's --user)."""
        key = keys.get(name)
        if key is not None:
            return self.usage(key.principal().name, key.role.value, key)
        with self.db.read() as conn:
            row = conn.execute("SELECT role, key_id FROM quota_principals WHERE principal = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"{name}: no such key and no use recorded under this name")
        return self.usage(name, row[0], keys.get(row[1]) if row[1] else None)

    def _usages(self, who: list[tuple[str, str, ApiKey | None]]) -> list[Usage]:
        windows = self._windows(self.clock())
        names = [w.name for w in windows.values()]
        counts: dict[tuple[str, str], tuple[int, int]] = {}
        with self.db.read() as conn:
            for principal, _, _ in who:
                for period, requests, tokens in conn.execute(
                        "SELECT period, requests, tokens FROM quota_usage WHERE principal = ? AND period IN (?, ?, ?)",
                        (principal, *names)).fetchall():
                    counts[(principal, period)] = (requests, tokens)
        out = []
        for principal, role, key in who:
            def count(period: str, column: int) -> int:
                return counts.get((principal, windows[period].name), (0, 0))[column]

            limits = self.limits(principal, role, key)
            used = {"requests_per_minute": count("minute", 0), "tokens_per_day": count("day", 1),
                    "tokens_per_month": count("month", 1)}
            out.append(Usage(principal, role, key.id if key else None,
                             tuple(self._use(name, used[name], limits[name], windows) for name in QUOTAS),
                             requests_today=count("day", 0), requests_this_month=count("month", 0)))
        return out


"""Usage and feedback analytics over HTTP: `GET /api/usage` (JSON or CSV) and the 利用状況 page
with its charts, for the roles that read the audit log (admins and auditors). Every figure is
computed from the audit log by `sekisho.audit.usage`; nothing here counts anything itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from sekisho.audit.usage import DIMENSIONS, METRICS, UsageQuery, UsageReport, UsageRow, label, usage_report
from sekisho.server.charts import Series, bars, columns
from sekisho.server.deps import require, state_of
from sekisho.server.errors import ErrorResponse
from sekisho.server.security import Caller, Permission
from sekisho.server.ui import PageRoute, _me, page, render

router = APIRouter(prefix="/api", tags=["audit"], responses={c: {"model": ErrorResponse} for c in (400, 401, 403, 429)})
ui_router = APIRouter(include_in_schema=False, route_class=PageRoute)

DEFAULT_DAYS = 30  # the page's period when none is chosen: the last 30 days, today included
TOP_USERS = 20
REASONS_SHOWN = 20
_DATE = "日付: 2026-12-01 や 令和8年12月1日 / a day (organisation's time zone), both ends included"


async def _report(request: Request, caller: Caller, query: UsageQuery,
                  tables: list[tuple[str, ...]] | None = None) -> UsageReport:
    state = state_of(request)
    return await state.runtime.run(lambda: usage_report(state.runtime.audit(), query, viewer=caller.principal,
                                                        tables=tables or ()))


# The dimensions `by` may name, comma-separated (stated in the spec as the server enforces it).
_BY = rf"^\s*(?:{'|'.join(DIMENSIONS)})\s*(?:,\s*(?:{'|'.join(DIMENSIONS)})\s*)*$"


@router.get("/usage", response_class=Response,
            responses={200: {"content": {"application/json": {}, "text/csv": {}},
                             "description": "figures per group; CSV: one column per dimension, then per figure"}})
async def usage(request: Request, since: str | None = Query(None, max_length=40, description=_DATE,
                                                          json_schema_extra={"format": "date"}),
                until: str | None = Query(None, max_length=40, description=_DATE, json_schema_extra={"format": "date"}),
                by: str = Query("day", max_length=100, description=f"comma-separated: {', '.join(DIMENSIONS)}",
                                pattern=_BY),
                format: Literal["json", "csv"] = Query("json"),
                names: bool = Query(False, description="real user names instead of pseudonyms (audited)"),
                caller: Caller = require(Permission.AUDIT)) -> Response:
    """Requests, tokens, latency, refusals, guard blocks and masks, review holds, errors, 👍/👎
    and energy per group, computed from the audit log. Users are pseudonymised unless `names`;
    thumbs-down reasons are included for admins (JSON)."""
    query = UsageQuery.parse(since=since, until=until, by=by, timezone=state_of(request).settings.organisation.timezone,
                             names=names)
    report = await _report(request, caller, query)
    if format == "json":
        return JSONResponse(report.to_json())
    period = f"{query.since or 'start'}_{query.until or 'now'}"
    # With a byte-order mark: Excel, which most readers will open it in, reads Japanese right only then.
    return Response("\ufeff" + report.to_csv(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="sekisho-usage-{period}.csv"'})


# --- the page -------------------------------------------------------------------------------------

PAGE_TABLES: list[tuple[str, ...]] = [("app",), ("model",), ("role",), ("tag",), ("user",)]
REQUESTS = [Series("依頼 / requests", "series-0")]
TOKENS = [Series("入力 / prompt", "series-0"), Series("出力 / completion", "series-1")]
# Words, not 👍/👎: a server without an emoji font (most on-premises ones) draws those as boxes.
RATINGS = [Series("高評価 / thumbs up", "up"), Series("低評価 / thumbs down", "down")]


@ui_router.get("/usage")
async def usage_page(request: Request, since: str = Query("", max_length=40), until: str = Query("", max_length=40),
                     names: bool = False, caller: Caller = page(Permission.AUDIT)) -> Response:
    zone = state_of(request).settings.organisation.timezone
    query = UsageQuery.parse(since=since, until=until, by=("day",), timezone=zone, names=names)
    until_day = query.until or datetime.now(query.zone).date()
    query = replace(query, until=until_day, since=query.since or until_day - timedelta(days=DEFAULT_DAYS - 1))
    report = await _report(request, caller, query, PAGE_TABLES)
    apps = await state_of(request).runtime.run(state_of(request).runtime.catalog().apps)
    titles = {app_id: f"{spec.title_ja} / {app_id}" for app_id, spec in apps.items()}

    def named(dimension: str, value: str) -> str:
        return label(dimension, value, titles)

    return render(request, "usage.html", title="利用状況", me=_me(caller), active="/usage", report=report,
                  query=query, metrics=METRICS, charts=_charts(report, named), tables=_tables(report, named),
                  users=[(row.key[0], row.figures) for row in
                         sorted(report.tables[("user",)], key=lambda r: -r.figures.requests)[:TOP_USERS]],
                  reasons=None if report.reasons is None else report.reasons[:REASONS_SHOWN],
                  label=named, export=_export_links(query))


def _charts(report: UsageReport, named: Callable[[str, str], str]) -> dict[str, Any]:
    query = report.query
    by_day = {row.key[0]: row.figures for row in report.rows}
    days = [(query.since + timedelta(days=n)).isoformat() for n in range((query.until - query.since).days + 1)]

    charts: dict[str, Any] = {
        "requests_per_day": columns([(d, [f.requests if (f := by_day.get(d)) else 0]) for d in days], REQUESTS,
                                    title="日別の依頼数 / Requests per day"),
        "tokens_per_day": columns([(d, [f.prompt_tokens, f.completion_tokens] if (f := by_day.get(d)) else [0, 0])
                                   for d in days], TOKENS, title="日別のトークン数 / Tokens per day"),
    }
    for dimension, ja, en in (("app", "アプリ別", "per app"), ("model", "モデル別", "per model")):
        rows = _by_requests(report.tables[(dimension,)])
        rows_named = [(named(dimension, r.key[0]), r.figures) for r in rows]
        charts[f"requests_per_{dimension}"] = bars([(n, [f.requests]) for n, f in rows_named], REQUESTS,
                                                   title=f"{ja}の依頼数 / Requests {en}")
        charts[f"tokens_per_{dimension}"] = bars([(n, [f.prompt_tokens, f.completion_tokens]) for n, f in rows_named],
                                                 TOKENS, title=f"{ja}のトークン数 / Tokens {en}")
        charts[f"ratings_per_{dimension}"] = bars(
            [(n, [f.thumbs_up, f.thumbs_down]) for n, f in rows_named if f.thumbs_up or f.thumbs_down], RATINGS,
            title=f"{ja}の満足度 / Satisfaction {en}")
    return charts


def _tables(report: UsageReport, named: Callable[[str, str], str]) -> list[dict[str, Any]]:
    """The figures behind the charts, and those without one, as tables (role and tag too)."""
    return [{"dimension": d, "ja": DIMENSIONS[d][0], "en": DIMENSIONS[d][1],
             "rows": [(named(d, r.key[0]), r.figures) for r in _by_requests(report.tables[(d,)])]}
            for d in ("app", "model", "role", "tag")]


def _by_requests(rows: list[UsageRow]) -> list[UsageRow]:
    return sorted(rows, key=lambda r: (-r.figures.requests, r.key))


def _export_links(query: UsageQuery) -> dict[str, str]:
    period = f"since={query.since}&until={query.until}" + ("&names=true" if query.names else "")
    return {fmt: f"/api/usage?{period}&by=day,app,model,role,tag,user&format={fmt}" for fmt in ("csv", "json")}

"""Quotas in the API and the web UI: `GET /api/me/usage` (the caller's use against its limits,
and when each resets), `GET /api/usage/quotas` (everyone's, for admins), the 利用枠 page (the
caller's; admins see everyone's table too) and the panel on the chat page. The counting itself is
quotas.py's; the refusals come from the one admission point (runtime.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from sekisho.server.deps import require, state_of
from sekisho.server.errors import ErrorResponse
from sekisho.server.quotas import Quotas, Usage
from sekisho.server.schemas import QuotaOut, UsageList, UsageOut
from sekisho.server.security import Caller, Permission, may
from sekisho.server.ui import PageRoute, _me, page, render

router = APIRouter(prefix="/api", tags=["quotas"],
                   responses={code: {"model": ErrorResponse} for code in (401, 403, 429)})
ui_router = APIRouter(include_in_schema=False, route_class=PageRoute)


def usage_out(usage: Usage) -> UsageOut:
    return UsageOut(principal=usage.principal, role=usage.role, key_id=usage.key_id,
                    quotas=[QuotaOut(**q.to_json()) for q in usage.quotas], requests_today=usage.requests_today,
                    requests_this_month=usage.requests_this_month)


def _quotas(request: Request) -> Quotas:
    quotas = state_of(request).runtime.quotas
    assert quotas is not None  # create_app always gives the runtime its quotas
    return quotas


async def my_usage(request: Request, caller: Caller) -> UsageOut:
    quotas = _quotas(request)
    usage = await state_of(request).runtime.run(quotas.usage, caller.principal.name, caller.principal.role.value,
                                                caller.key)
    return usage_out(usage)


async def everyones_usage(request: Request) -> UsageList:
    state = state_of(request)
    quotas = _quotas(request)
    usages = await state.runtime.run(quotas.everyone, state.keys)
    return UsageList(timezone=quotas.timezone, principals=[usage_out(u) for u in usages])


@router.get("/me/usage", response_model=UsageOut)
async def me_usage(request: Request, caller: Caller = require(Permission.CHAT)) -> UsageOut:
    """The caller's requests this minute and tokens today and this month, against the limits that
    apply (the tightest of the key's, the user's and the role's), and when each resets."""
    return await my_usage(request, caller)


@router.get("/usage/quotas", response_model=UsageList)
async def usage_quotas(request: Request, caller: Caller = require(Permission.KEYS)) -> UsageList:
    """Everyone's current use against their limits (admins): every principal that used the
    service this month and every active key."""
    return await everyones_usage(request)


# --- web UI ---------------------------------------------------------------------------------

def _view(usage: UsageOut) -> dict[str, Any]:
    return {**usage.model_dump(), "by_name": {q.name: q for q in usage.quotas}}


@ui_router.get("/quota")
async def quota_page(request: Request, caller: Caller = page(Permission.CHAT)) -> Response:
    mine = await my_usage(request, caller)
    admin = may(caller.principal, Permission.KEYS)
    everyone = await everyones_usage(request) if admin else None
    return render(request, "quota.html", title="利用枠", me=_me(caller), active="/quota", usage=_view(mine),
                  everyone=[_view(u) for u in everyone.principals] if everyone else None,
                  timezone=_quotas(request).timezone)


@ui_router.get("/ui/quota")
async def quota_panel(request: Request, caller: Caller = page(Permission.CHAT)) -> Response:
    """The small panel on the chat page, refreshed after each answer."""
    return render(request, "_quota_panel.html", usage=_view(await my_usage(request, caller)))

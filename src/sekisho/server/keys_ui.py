"""The 鍵 / Keys page: an admin creates API keys for programs (the secret shown once), sees every
key with its role, tags and last use, and revokes them. Each action is the native API's
(/api/keys), audited there."""

from __future__ import annotations

import time

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from sekisho.errors import InvalidInput
from sekisho.server import api
from sekisho.server.errors import _validation_message
from sekisho.server.schemas import KeyCreate
from sekisho.server.security import Caller, Permission
from sekisho.server.ui import PageRoute, _me, page, render

router = APIRouter(include_in_schema=False, route_class=PageRoute)

ROLES = [("user", "利用者 / User"), ("reviewer", "レビュー担当 / Reviewer"), ("auditor", "監査担当 / Auditor"),
         ("admin", "管理者 / Admin")]


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "—"


async def _table(request: Request, caller: Caller) -> Response:
    listed = await api.list_keys(request, caller)
    return render(request, "_keys_table.html", keys=listed.keys, when=_when)


@router.get("/keys")
async def keys_page(request: Request, caller: Caller = page(Permission.KEYS)) -> Response:
    listed = await api.list_keys(request, caller)
    return render(request, "keys.html", title="鍵", me=_me(caller), active="/keys", keys=listed.keys, roles=ROLES,
                  when=_when)


@router.get("/ui/keys/table")
async def keys_table(request: Request, caller: Caller = page(Permission.KEYS)) -> Response:
    return await _table(request, caller)


@router.post("/ui/keys")
async def ui_create_key(request: Request, role: str = Form(..., max_length=20), name: str = Form("", max_length=100),
                        tags: str = Form("", max_length=5000), requests_per_minute: str = Form("", max_length=12),
                        tokens_per_day: str = Form("", max_length=15), tokens_per_month: str = Form("", max_length=15),
                        caller: Caller = page(Permission.KEYS)) -> Response:
    # An empty limit field is no limit of the key's own (the user's and the role's still apply).
    limits = {name: value.strip() for name, value in (("requests_per_minute", requests_per_minute),
              ("tokens_per_day", tokens_per_day), ("tokens_per_month", tokens_per_month)) if value.strip()}
    try:
        body = KeyCreate(role=role, name=name.strip(), tags=list(api._split_tags(tags)), limits=limits)
    except ValidationError as exc:
        raise InvalidInput(_validation_message(exc)[0]) from None
    created = await api.create_key(body, request, caller)
    response = render(request, "_key_created.html", key=created)
    response.headers["HX-Trigger"] = "refresh-keys"
    return response


@router.post("/ui/keys/{key_id}/revoke")
async def ui_revoke_key(key_id: str, request: Request, caller: Caller = page(Permission.KEYS)) -> Response:
    await api.revoke_key(key_id, request, caller)
    return await _table(request, caller)

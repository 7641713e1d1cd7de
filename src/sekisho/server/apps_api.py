"""Task apps over HTTP: GET /api/apps, POST /api/apps/{id}/run (a form with files, or JSON;
`stream` for server-sent events), and POST /api/apps for an admin adding the organisation's own
app file. Every model call of a run passes the governed request path, audited with the app's id
and version."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile

from sekisho.apps import Upload, choose_backend, prepare, run
from sekisho.errors import SekishoError
from sekisho.ingest import upload_name
from sekisho.server.deps import AppState, audit_event, require, state_of
from sekisho.server.errors import ApiError, ErrorResponse
from sekisho.server.markdown import render
from sekisho.server.security import Caller, Permission
from sekisho.server.uploads import check_content

router = APIRouter(prefix="/api", tags=["apps"],
                   responses={code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 429)})
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_RUN_BODY = {"requestBody": {"content": {
    "multipart/form-data": {"schema": {"type": "object", "additionalProperties": True,
                                       "description": "the app's inputs by name (files as file parts), "
                                                      "backend, stream"}},
    "application/json": {"schema": {"type": "object", "properties": {
        "inputs": {"type": "object", "additionalProperties": {"type": "string"}},
        "backend": {"type": "string"}, "stream": {"type": "boolean"},
        "max_tokens": {"type": "integer", "description": "a cap below the app's own"}}}}}}}


def _catalog(state: AppState):
    return state.runtime.catalog()


@router.get("/apps")
async def list_apps(request: Request, caller: Caller = require(Permission.CHAT)) -> dict[str, Any]:
    catalog = _catalog(state_of(request))
    apps = await state_of(request).runtime.run(catalog.apps)
    out: dict[str, Any] = {"apps": [a.to_json() for a in sorted(apps.values(), key=lambda a: (not a.shipped, a.id))]}
    if caller.principal.role.value == "admin":
        out["problems"] = catalog.problems  # app files that could not be read, one line each
    return out


@router.get("/apps/{app_id}")
async def get_app(app_id: str, request: Request, caller: Caller = require(Permission.CHAT)) -> dict[str, Any]:
    state = state_of(request)
    return (await state.runtime.run(_catalog(state).get, app_id)).to_json()


@router.post("/apps", status_code=201)
async def add_app(request: Request, caller: Caller = require(Permission.KEYS)) -> dict[str, Any]:
    """Add (or replace) one of the organisation's apps: the body is the app's TOML file."""
    state = state_of(request)
    text = (await request.body()).decode("utf-8", errors="strict")
    spec = await state.runtime.run(_catalog(state).add, text)
    await audit_event(state, "app.add", {"principal": caller.principal.name, "app": spec.id, "version": spec.version})
    return spec.to_json()


async def read_run_body(request: Request) -> tuple[dict[str, str], dict[str, Upload], dict[str, Any]]:
    """(values, uploads, options: backend, stream, max_tokens) from a multipart form or a JSON body."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "body: not valid JSON", code="invalid_request") from None
        inputs = body.get("inputs") or {}
        if not isinstance(inputs, dict) or not all(isinstance(v, str) for v in inputs.values()):
            raise ApiError(400, "inputs: an object of strings", code="invalid_request", param="inputs")
        options = {"backend": body.get("backend") or None, "stream": bool(body.get("stream")),
                   "max_tokens": body.get("max_tokens")}
        if options["max_tokens"] is not None and not isinstance(options["max_tokens"], int):
            raise ApiError(400, "max_tokens: an integer", code="invalid_request", param="max_tokens")
        return dict(inputs), {}, options
    form = await request.form()
    values: dict[str, str] = {}
    uploads: dict[str, Upload] = {}
    options: dict[str, Any] = {"backend": None, "stream": False, "max_tokens": None}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            if not value.filename:
                continue
            name = upload_name(value.filename)
            data = await value.read()
            check_content(name, data)
            uploads[key] = Upload(name, data)
        elif key == "backend":
            options["backend"] = value or None
        elif key == "stream":
            options["stream"] = value.lower() in ("1", "true", "yes", "on")
        elif key == "max_tokens":
            if not value.isdigit():
                raise ApiError(400, "max_tokens: an integer", code="invalid_request", param="max_tokens")
            options["max_tokens"] = int(value)
        else:
            values[key] = value
    return values, uploads, options


@router.post("/apps/{app_id}/run", openapi_extra=_RUN_BODY)
async def run_app(app_id: str, request: Request, caller: Caller = require(Permission.CHAT)) -> Any:
    """Run an app. The answer: {"app", "version", "backend", "parts": [{title, text, html, status,
    audit_seq, ...}]}; with `stream`, server-sent events `part` ({"title"}), `delta` ({"text"}),
    then `done` (that object) or `error` ({"message"})."""
    state = state_of(request)
    spec = await state.runtime.run(_catalog(state).get, app_id)
    values, uploads, options = await read_run_body(request)
    stream = options["stream"]
    path = state.runtime.path()
    prepared = await state.runtime.run(lambda: prepare(spec, values, uploads, max_tokens=options["max_tokens"]))
    name = await state.runtime.run(choose_backend, spec, options["backend"], state.settings, path)
    kb = await state.runtime.run(state.runtime.kb) if spec.retrieval != "none" else None
    events = run(path, spec, prepared, principal=caller.principal, backend=name, kb=kb, settings=state.settings)
    admission = state.runtime.admitted(caller, request)
    await admission.__aenter__()
    if not stream:
        try:
            parts = [value async for kind, value in events if kind == "done"][0]
        finally:
            await admission.__aexit__(None, None, None)
        return _result(spec, name, parts)
    return StreamingResponse(_events(events, spec, name, admission), media_type="text/event-stream",
                             headers=_SSE_HEADERS)


def _result(spec: Any, backend: str, parts: list[Any]) -> dict[str, Any]:
    out = []
    for part in parts:
        item = part.to_json()
        item["html"] = str(render(part.text, part.sources)) if spec.output == "markdown" else ""
        out.append(item)
    return {"app": spec.id, "version": spec.version, "backend": backend, "output": spec.output, "parts": out}


async def _events(events: AsyncIterator[tuple[str, Any]], spec: Any, backend: str, admission: Any) -> AsyncIterator[str]:
    def event(name: str, data: dict[str, Any]) -> str:
        return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

    try:
        async for kind, value in events:
            if kind == "part":
                yield event("part", {"title": value})
            elif kind == "delta":
                yield event("delta", {"text": value})
            else:
                yield event("done", _result(spec, backend, value))
    except SekishoError as exc:
        yield event("error", {"message": str(exc)})
    finally:
        await admission.__aexit__(None, None, None)




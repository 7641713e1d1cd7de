"""Errors in OpenAI's JSON shape, on every route, so one client error handler serves both APIs.

    {"error": {"message": "...", "type": "...", "param": null, "code": "..."}}

Status codes: 400 malformed request, 401 no or bad key, 403 role not allowed, 404 unknown model or
object, 409 state conflict (e.g. a review already decided), 413 too large, 415 wrong file type,
429 rate limit, 400 with code "guard_blocked" when the governance policy blocks a request (the
same status Azure OpenAI uses for content filtering, so SDKs raise BadRequestError; blocked
content is never echoed back), 502 when a model backend fails, 500 never with a stack trace.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from sekisho.errors import SekishoError

log = logging.getLogger("sekisho.server")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    502: "backend_error",
    503: "service_unavailable",
}


# Codes for the refusals Starlette raises itself (an unknown path, a wrong method, a body past the
# limit while it streams in), so they match the codes sekisho's own refusals carry.
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(SekishoError):
    """An HTTP refusal raised by a route: its status and code are the instance's own."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.http_status = status
        self.code = code
        self.param = param
        self.headers = headers or {}


def error_json(status: int, message: str, *, code: str | None = None, param: str | None = None,
               headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(message=message, type=_TYPES.get(status, "server_error"),
                                         param=param, code=code))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _allowed(request: Request) -> str:
    """Every method some route serves at this path. Starlette names only the first route that
    matched the path, and GET and POST /api/documents are two routes."""
    from fastapi.routing import iter_route_contexts
    from starlette.routing import compile_path

    methods: set[str] = set()
    for context in iter_route_contexts(request.app.routes):
        if context.methods and compile_path(context.path_format)[0].match(request.url.path):
            methods |= context.methods
    return ", ".join(sorted(methods))


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ())]
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]  # the first element says where, the rest names the field
    where = ".".join(loc) or None
    msg = first.get("msg", "invalid request")
    return (f"{where}: {msg}" if where else msg), where


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_json(400, message, code="invalid_request", param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed(request)
        return error_json(exc.status_code, detail, code=_HTTP_CODES.get(exc.status_code), headers=headers or None)

    @app.exception_handler(SekishoError)
    async def _sekisho_error(request: Request, exc: SekishoError) -> JSONResponse:
        if exc.http_status >= 500:
            # A store, embedder, policy, audit log, key or model that cannot be used is the
            # operator's problem: the client gets the reason, the server log says where.
            log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
        return error_json(exc.http_status, str(exc), code=exc.code, param=getattr(exc, "param", None),
                          headers=exc.headers or None)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        # The operator gets the traceback in the server log; the client gets one line.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_json(500, f"internal error: {type(exc).__name__}", code="internal_error")

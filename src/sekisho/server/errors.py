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


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}


def error_json(status: int, message: str, *, code: str | None = None, param: str | None = None,
               headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(message=message, type=_TYPES.get(status, "server_error"),
                                         param=param, code=code))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ())]
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]  # the first element says where, the rest names the field
    where = ".".join(loc) or None
    msg = first.get("msg", "invalid request")
    return (f"{where}: {msg}" if where else msg), where


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_json(exc.status, exc.message, code=exc.code, param=exc.param, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_json(400, message, code="invalid_request", param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        return error_json(exc.status_code, detail, headers=getattr(exc, "headers", None))

    # A store, embedder, policy, audit log or signing key that cannot be used is an operator's
    # problem with a one-line reason: 503 with that line, not an anonymous 500.
    from sekisho.audit.log import AuditError
    from sekisho.audit.signing import SigningKeyError
    from sekisho.guard.errors import GuardError
    from sekisho.guard.policy import PolicyError
    from sekisho.models.protocol import BackendError
    from sekisho.retrieval.embed import EmbedderError
    from sekisho.store.sqlite import StoreError

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
        return error_json(503, str(exc), code="service_unavailable")

    async def _backend(request: Request, exc: Exception) -> JSONResponse:
        return error_json(502, str(exc), code="backend_error")

    from sekisho.server.runtime import Busy

    async def _busy(request: Request, exc: Exception) -> JSONResponse:
        return error_json(503, str(exc), code="server_busy", headers={"Retry-After": "5"})

    app.add_exception_handler(Busy, _busy)
    for unavailable in (StoreError, EmbedderError, PolicyError, AuditError, SigningKeyError, GuardError):
        app.add_exception_handler(unavailable, _unavailable)
    app.add_exception_handler(BackendError, _backend)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        # The operator gets the traceback in the server log; the client gets one line.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_json(500, f"internal error: {type(exc).__name__}", code="internal_error")

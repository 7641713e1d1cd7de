"""`create_app(settings)`: the one process serving the native API, the OpenAI-compatible gateway
and the web UI, and `serve(settings, host, port)` to run it under Uvicorn."""

from __future__ import annotations

import asyncio
import os
import socket
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import sekisho
from sekisho.config import Settings
from sekisho.server.deps import AppState, FailedAuthentications
from sekisho.server.errors import install_error_handlers
from sekisho.server.keys import KeyStore, open_access_database
from sekisho.server.runtime import Runtime
from sekisho.server.security import BodyLimit, RateLimiter, Sessions

HERE = Path(__file__).parent
WORKER = f"{socket.gethostname()}:{os.getpid()}"
JSON_BODY_LIMIT = 4 * 1024 * 1024  # chat requests carry prompts, not files
UPLOAD_PATHS = ("/api/documents", "/ui/documents")
# Everything the UI loads comes from this server; htmx needs no eval (no hx-on/js: attributes) and
# injects one <style> for its indicators.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def create_app(settings: Settings) -> FastAPI:
    from sekisho.server import api, openai_api, proofread, ui

    access = open_access_database(settings)
    state = AppState(settings=settings, runtime=Runtime(settings), keys=KeyStore(access), sessions=Sessions(access),
                     limiter=RateLimiter(access, settings.server.rate_limit_per_minute),
                     anonymous_limiter=RateLimiter(access, settings.server.unauthenticated_per_minute),
                     failed=FailedAuthentications())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async def record_failed_authentications() -> None:
            while True:
                await asyncio.sleep(FailedAuthentications.WINDOW_S / 4)
                await state.failed.flush(state)

        recorder = asyncio.create_task(record_failed_authentications())
        state.runtime.ingest.start()  # uploads accepted before a restart are resumed
        try:
            yield
        finally:
            recorder.cancel()
            await state.failed.flush(state, everything=True)
            # Resources reopen lazily if the app is started again; the access database's
            # connections live as long as the app object.
            state.runtime.close()

    app = FastAPI(
        title="sekisho 関所",
        version=getattr(sekisho, "__version__", "0.1.0"),
        description="On-premises governed generative AI: knowledge base, grounded answers, "
                    "OpenAI-compatible gateway, review and audit. 認証: `Authorization: Bearer <APIキー>`.",
        lifespan=lifespan,
    )
    app.state.sekisho = state
    install_error_handlers(app)
    upload_bytes = settings.server.max_upload_mb * 1024 * 1024 + 64 * 1024  # room for multipart framing
    app.add_middleware(BodyLimit, default_bytes=JSON_BODY_LIMIT, upload_bytes=upload_bytes,
                       upload_paths=UPLOAD_PATHS)
    @app.middleware("http")
    async def security_headers(request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        # Which worker process answered: for operators reading logs of `serve --workers N`.
        response.headers["X-Sekisho-Worker"] = WORKER
        return response

    app.include_router(openai_api.router)
    app.include_router(api.router)
    app.include_router(ui.router)
    app.include_router(proofread.router)
    app.include_router(proofread.ui_router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.openapi = lambda: _openapi_with_bearer(app)  # type: ignore[method-assign]
    return app


def _openapi_with_bearer(app: FastAPI) -> dict:
    """The generated spec plus the one authentication scheme every API route uses (the key is
    checked in a dependency FastAPI cannot describe on its own), with the refusals described as
    they are sent: every route may refuse a malformed request with 400 (FastAPI documents a 422
    nobody receives), and every refusal is the JSON error body (FastAPI documents a route's
    errors in the route's own media type: text/plain for the audit export)."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearerAuth": {"type": "http", "scheme": "bearer", "description": "APIキー / API key (sk-skh-...)"}}
        schema["security"] = [{"bearerAuth": []}]
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                responses.setdefault("400", {"description": "Bad Request"})
                for status, response in responses.items():
                    if status.isdigit() and int(status) >= 400:
                        response["content"] = error
        for unused in ("HTTPValidationError", "ValidationError"):
            schema["components"]["schemas"].pop(unused, None)
        app.openapi_schema = schema
    return app.openapi_schema


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Run under Uvicorn until interrupted. Raises OSError before starting when the address cannot
    be bound (Uvicorn would log it and exit with its own code)."""
    import socket

    import uvicorn

    host, port = host or settings.server.host, port or settings.server.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))

    # Keep-alive longer than uvicorn's 5 s: a client reusing a pooled connection at the moment the
    # server closes it gets a reset, which under steady load showed up as a rare ReadError.
    options = {"host": host, "port": port, "log_level": "info", "proxy_headers": False, "timeout_keep_alive": 30,
               "backlog": 2048, "timeout_graceful_shutdown": settings.server.shutdown_grace_s}
    if settings.server.workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    # Several processes: each worker builds its own app from the same settings, handed over in
    # the environment (uvicorn starts workers by import string).
    os.environ[_SETTINGS_VARIABLE] = settings.model_dump_json()
    uvicorn.run("sekisho.server.app:app_from_environment", factory=True, workers=settings.server.workers, **options)


_SETTINGS_VARIABLE = "SEKISHO_SERVE_SETTINGS"


def app_from_environment() -> FastAPI:
    """The app of one worker process of `sekisho serve --workers N`."""
    return create_app(Settings.model_validate_json(os.environ[_SETTINGS_VARIABLE]))

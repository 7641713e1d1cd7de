"""`create_app(settings)`: the one process serving the native API, the OpenAI-compatible gateway
and the web UI, and `serve(settings, host, port)` to run it under Uvicorn."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import sekisho
from sekisho.config import Settings
from sekisho.errors import SekishoError
from sekisho.server.deps import AppState, FailedAuthentications
from sekisho.server.errors import install_error_handlers
from sekisho.server.keys import KeyStore, open_access_database
from sekisho.server.logs import log_config, request_context
from sekisho.server.metrics import Metrics
from sekisho.server.oidc import OidcSignIn, origin
from sekisho.server.quotas import Quotas
from sekisho.server.runtime import Runtime
from sekisho.server.security import BodyLimit, RateLimiter, Sessions

log = logging.getLogger("sekisho.server")
HERE = Path(__file__).parent
WORKER = f"{socket.gethostname()}:{os.getpid()}"
JSON_BODY_LIMIT = 4 * 1024 * 1024  # chat requests carry prompts, not files
UPLOAD_PATHS = ("/api/documents", "/ui/documents", "/api/apps/", "/api/proofread")
# Everything the UI loads comes from this server; htmx needs no eval (no hx-on/js: attributes) and
# injects one <style> for its indicators.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; frame-ancestors 'none'; form-action {form_action}; base-uri 'none'")


def headers_for(settings: Settings) -> dict[str, str]:
    form_action = "'self'"
    if settings.auth.oidc is not None:
        # Signing out posts a form whose answer redirects to the IdP's end_session_endpoint, and
        # form-action governs where a form's redirects may lead as well as where it posts.
        form_action += " " + origin(settings.auth.oidc.issuer)
    return {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY.format(form_action=form_action),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }


def create_app(settings: Settings) -> FastAPI:
    from sekisho.server import (
        api,
        apps_api,
        conversations_api,
        keys_ui,
        openai_api,
        operations,
        proofread,
        quota_api,
        signin,
        ui,
        usage,
    )

    access = open_access_database(settings)
    keys = KeyStore(access)  # applies the access database's migrations, which the quotas' tables are part of
    runtime: Runtime

    def queue_depth() -> dict[str, int]:
        return runtime.jobs().depth()

    metrics = Metrics(queue_depth)
    runtime = Runtime(settings, quotas=Quotas(access, settings.quotas, timezone=settings.organisation.timezone), audit_observers=(metrics.observe_audit,))
    oidc = OidcSignIn(settings.auth.oidc, access) if settings.auth.oidc else None
    state = AppState(settings=settings, runtime=runtime, keys=keys,
                     sessions=Sessions(access, ttl_s=settings.auth.session_hours * 3600),
                     limiter=RateLimiter(access, settings.server.rate_limit_per_minute),
                     anonymous_limiter=RateLimiter(access, settings.server.unauthenticated_per_minute),
                     failed=FailedAuthentications(), oidc=oidc)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async def record_failed_authentications() -> None:
            while True:
                await asyncio.sleep(FailedAuthentications.WINDOW_S / 4)
                await state.failed.flush(state)

        async def reach_identity_provider(oidc: OidcSignIn) -> None:
            # Said at startup, in one line, rather than first at someone's sign-in; API keys and
            # the key login work meanwhile, and every sign-in tries the IdP again.
            try:
                await oidc.metadata()
            except SekishoError as exc:
                log.error("sign-in with the organisation's accounts is unavailable for now: %s", exc)

        recorder = asyncio.create_task(record_failed_authentications())
        discovery = asyncio.create_task(reach_identity_provider(state.oidc)) if state.oidc else None
        state.runtime.ingest.start()  # uploads accepted before a restart are resumed
        state.runtime.reembed.start()  # a store embedded by another embedder than configured moves to it
        try:
            yield
        finally:
            recorder.cancel()
            if discovery is not None:
                discovery.cancel()
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
        docs_url=None,  # served from the package by operations.py: FastAPI's pages load a CDN
        redoc_url=None,
    )
    app.state.sekisho = state
    app.state.metrics = metrics
    install_error_handlers(app)
    upload_bytes = settings.server.max_upload_mb * 1024 * 1024 + 64 * 1024  # room for multipart framing
    app.add_middleware(BodyLimit, default_bytes=JSON_BODY_LIMIT, upload_bytes=upload_bytes,
                       upload_paths=UPLOAD_PATHS)
    headers = headers_for(settings)

    @app.middleware("http")
    async def security_headers(request, call_next):
        response = await call_next(request)
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        # Which worker process answered: for operators reading logs of `serve --workers N`.
        response.headers["X-Sekisho-Worker"] = WORKER
        return response

    # Outermost last: the request id is set before anything else runs, metrics time everything.
    app.middleware("http")(metrics.middleware)
    app.middleware("http")(request_context)

    app.include_router(openai_api.router)
    app.include_router(api.router)
    app.include_router(conversations_api.router)
    app.include_router(apps_api.router)
    app.include_router(signin.router)
    app.include_router(ui.router)
    app.include_router(keys_ui.router)
    app.include_router(proofread.router)
    app.include_router(proofread.ui_router)
    app.include_router(operations.router)
    app.include_router(quota_api.router)
    app.include_router(quota_api.ui_router)
    app.include_router(usage.router)
    app.include_router(usage.ui_router)
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
    trusted = settings.server.forwarded_allow_ips
    options = {"host": host, "port": port, "timeout_keep_alive": 30, "backlog": 2048, "access_log": False,
               "log_config": log_config(settings.server.log_format, settings.server.log_level),
               "proxy_headers": bool(trusted), **({"forwarded_allow_ips": trusted} if trusted else {}),
               "timeout_graceful_shutdown": settings.server.shutdown_grace_s}
    if settings.server.workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    # Several processes: each worker builds its own app from the same settings, handed over in
    # the environment (uvicorn starts workers by import string).
    os.environ[_SETTINGS_VARIABLE] = settings.model_dump_json()
    # Every worker writes its metrics into one folder and a scrape of any of them sums them all.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        import tempfile

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="sekisho-metrics-")
    uvicorn.run("sekisho.server.app:app_from_environment", factory=True, workers=settings.server.workers, **options)


_SETTINGS_VARIABLE = "SEKISHO_SERVE_SETTINGS"


def app_from_environment() -> FastAPI:
    """The app of one worker process of `sekisho serve --workers N`."""
    return create_app(Settings.model_validate_json(os.environ[_SETTINGS_VARIABLE]))

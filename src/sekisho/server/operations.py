"""What an IT department's tooling asks of a service: /healthz (the process answers), /readyz (it
can serve: store, audit log and model backends reachable), /metrics (Prometheus) and the API docs,
served from the package so they render on a network without internet access.

/healthz, /readyz and /metrics need no key: load balancers and scrapers call them, and they carry
no content (counts and check names only). Restrict them at the reverse proxy if the network is
not trusted (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

import sekisho
from sekisho.server.deps import state_of

router = APIRouter(tags=["operations"])

CHECK_TIMEOUT_S = 3.0  # one slow dependency must not hold the probe past a load balancer's timeout
BACKEND_CHECK_TTL_S = 15.0  # a remote model server is asked at most this often, however often probes come


class NotReady(Exception):
    """A dependency cannot serve; the message names it."""


@dataclass
class _Remembered:
    at: float
    error: str | None


_backend_checks: dict[tuple[int, str], _Remembered] = {}


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    """Liveness: the process serves HTTP. Nothing else is checked, so a restart is not triggered
    by a dependency that a restart would not fix."""
    from sekisho.server.app import WORKER

    return {"status": "ok", "version": sekisho.__version__, "worker": WORKER}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 when the store, the audit log and the default model backend answer; 503
    naming what does not. Other backends failing make the service "degraded", still ready."""
    state = state_of(request)
    runtime, settings = state.runtime, state.settings
    checks: dict[str, Any] = {
        "store": lambda: _store(runtime),
        "audit": lambda: _audit(runtime),
    }
    for name in dict.fromkeys([settings.models.default, *settings.models.backends]):
        checks[f"backend:{name}"] = lambda name=name: _backend(runtime, name)
    results = await asyncio.gather(*(_timed(runtime, fn) for fn in checks.values()))
    report = dict(zip(checks, results, strict=True))
    essential = {"store", "audit", f"backend:{settings.models.default}"}
    failed = [name for name, result in report.items() if result != "ok"]
    status = "not ready" if set(failed) & essential else "degraded" if failed else "ready"
    return JSONResponse({"status": status, "checks": report}, status_code=503 if status == "not ready" else 200)


async def _timed(runtime: Any, check: Any) -> str:
    try:
        await asyncio.wait_for(runtime.run(check), CHECK_TIMEOUT_S)
        return "ok"
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure of a dependency is "not ready", named
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _store(runtime: Any) -> None:
    store = runtime.kb().store
    path = getattr(store, "path", None)
    # An open SQLite connection keeps reading a file that was deleted or unmounted under it: the
    # path itself must still be there for the next process to find the documents.
    if isinstance(path, Path) and not path.exists():
        raise NotReady(f"{path}: the store file is gone")
    with store.db.read() as conn:
        conn.execute("SELECT 1").fetchone()


def _audit(runtime: Any) -> None:
    log = runtime.audit()
    if log.path is not None and not Path(log.path).exists():  # path is None in PostgreSQL
        raise NotReady(f"{log.path}: the audit log file is gone")
    log.head()


def _backend(runtime: Any, name: str) -> None:
    key = (id(runtime), name)
    remembered = _backend_checks.get(key)
    if remembered is None or time.monotonic() - remembered.at > BACKEND_CHECK_TTL_S:
        error = None
        try:
            backend = runtime.path().backend(name)
            if backend.info().kind == "llama.cpp":
                # Loading weights is not a readiness probe's job: the file must be there to load.
                model = Path(runtime.settings.models.backends[name].model)
                if not model.is_file():
                    raise NotReady(f"{model}: model file not found")
            else:
                backend.check()
        except Exception as exc:  # noqa: BLE001 - named in the report
            error = str(exc) or type(exc).__name__
        remembered = _backend_checks[key] = _Remembered(time.monotonic(), error)
    if remembered.error:
        raise NotReady(remembered.error)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return await state_of(request).runtime.run(request.app.state.metrics.exposition)


@router.get("/docs", include_in_schema=False)
async def api_docs() -> HTMLResponse:
    """Swagger UI from the package's static files (FastAPI's default loads it from a CDN, which an
    offline network cannot reach and the Content-Security-Policy would refuse anyway)."""
    return HTMLResponse(_DOCS_PAGE)


_DOCS_PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>sekisho API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/static/swagger-ui-bundle.js"></script>
<script src="/static/api-docs.js"></script></body></html>
"""

"""The server's logs: one JSON object per line (or plain text), each naming the worker and the
request id that also appears in the X-Request-ID response header and in every audit record the
request wrote, so an operator can go from a log line to the audit chain and back.

The access log is sekisho's own (uvicorn's is turned off): method, route path, status, duration,
client address. Never a query string, a body or a key: they may carry personal data.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sekisho.identity import REQUEST_ID, request_id_from

access_log = logging.getLogger("sekisho.access")

# Fields a log call may pass in `extra=` that the JSON line carries as its own keys.
_FIELDS = ("method", "path", "status", "duration_ms", "client")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Read per line: `serve --workers N` hands one logging configuration to every process.
        line["worker"] = f"{socket.gethostname()}:{os.getpid()}"
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        for name in _FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)  # for operators; users never see it
        return json.dumps(line, ensure_ascii=False)


def log_config(log_format: str, level: str) -> dict[str, Any]:
    """logging.config.dictConfig for uvicorn and sekisho: every logger through one handler."""
    formatter = ({"()": JsonFormatter} if log_format == "json"
                 else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"})
    handler = {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
    named = {name: {"handlers": ["default"], "level": level.upper(), "propagate": False}
             for name in ("sekisho", "uvicorn", "uvicorn.error")}
    return {"version": 1, "disable_existing_loggers": False, "formatters": {"default": formatter},
            "handlers": {"default": handler}, "loggers": named}


async def request_context(request: Request, call_next: Callable[[Request], Any]) -> Response:
    """Serve the request under its id (the caller's X-Request-ID when it is a plain token) and log
    it once it is answered."""
    request_id = request_id_from(request.headers.get("x-request-id"))
    token = REQUEST_ID.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        response.headers["X-Request-ID"] = request_id
        return response
    finally:
        access_log.info("%s %s %s", request.method, request.url.path, status, extra={
            "method": request.method, "path": request.url.path, "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "client": request.client.host if request.client else None, "request_id": request_id})
        REQUEST_ID.reset(token)

"""The server's long-lived resources, shared by every request this process serves.

Governed requests run concurrently: each is a coroutine on the event loop whose checks run on the
request path's thread pool and whose model call runs as the backend can take it (request/calls.py),
so a model call in flight holds nothing another request needs. The knowledge base gives every
thread its own store connection (SQLite stays WAL, one writer at a time); the audit log serialises
appends in a short critical section. Ingestion runs on a thread of its own with its own
knowledge-base handle, so a long upload never stalls questions.

Admission: at most `server.max_in_flight` governed requests run at once per process; more are
refused at once with 503 and Retry-After (OpenAI SDKs retry those with backoff) instead of waiting
past every client's timeout.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from sekisho.config import Settings
from sekisho.errors import SekishoError

T = TypeVar("T")


class Busy(SekishoError):
    """Too many requests in flight: 503 with Retry-After, which OpenAI SDKs retry with backoff."""

    code = "server_busy"
    headers = {"Retry-After": "5"}


class Runtime:
    def __init__(self, settings: Settings, max_in_flight: int | None = None):
        self.settings = settings
        self.max_in_flight = max_in_flight or settings.server.max_in_flight
        self._lock = threading.RLock()  # a resource's maker asks for the resources it is built on
        self._resources: dict[str, Any] = {}
        self._in_flight = 0
        self._ingest = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sekisho-ingest")
        self._ingest_kb: Any = None
        self.jobs = IngestJobs()

    # --- resources, created on first use and shared by every thread ------------------------------

    def _get(self, name: str, make: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._resources:
                self._resources[name] = make()
            return self._resources[name]

    def kb(self):
        from sekisho.retrieval import open_knowledge_base

        return self._get("kb", lambda: open_knowledge_base(self.settings))

    def audit(self):
        from sekisho.audit.log import AuditLog

        return self._get("audit", lambda: AuditLog.from_settings(self.settings))

    def reviews(self):
        from sekisho.audit.review import ReviewQueue

        return self._get("reviews", lambda: ReviewQueue(self.audit()))

    def path(self):
        from sekisho.request import RequestPath

        # One audit handle and review queue for the whole server: denials, decisions and
        # governed calls chain into the same log.
        return self._get("path", lambda: RequestPath(self.settings, audit=self.audit(), review=self.reviews(),
                                                      threads=self.settings.server.threads))

    # --- running work ---------------------------------------------------------------------------

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """A governed request's slot; Busy when every slot is taken."""
        with self._lock:
            if self._in_flight >= self.max_in_flight:
                raise Busy(f"サーバーが混み合っています / server busy: {self._in_flight} requests in flight")
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking call (store, audit, search) off the event loop, on the request path's pool."""
        pool = self.path().pool
        return await asyncio.get_running_loop().run_in_executor(pool, partial(fn, *args, **kwargs))

    def submit_ingest(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        return self._ingest.submit(fn, *args, **kwargs)

    def ingest_kb(self):
        """The ingest thread's own knowledge-base handle; call only from submit_ingest()."""
        from sekisho.retrieval import open_knowledge_base

        if self._ingest_kb is None:
            self._ingest_kb = open_knowledge_base(self.settings)
        return self._ingest_kb

    def close(self) -> None:
        """Close every resource. A closed runtime reopens them lazily if used again, as happens
        when an ASGI app is started and stopped several times (tests)."""

        def close_ingest_kb() -> None:
            if self._ingest_kb is not None:
                self._ingest_kb.close()
                self._ingest_kb = None

        self._ingest.submit(close_ingest_kb).result()
        with self._lock:
            resources, self._resources = self._resources, {}
        for resource in reversed(list(resources.values())):
            close = getattr(resource, "close", None)
            if callable(close):
                close()


# --- background ingestion -------------------------------------------------------------------

@dataclass
class FileResult:
    name: str
    status: str = "queued"  # queued | running | done | failed
    document_id: str | None = None
    chunks: int | None = None
    error: str | None = None


@dataclass
class Job:
    id: str
    owner: str
    files: list[FileResult]
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    @property
    def done(self) -> int:
        return sum(f.status in ("done", "failed") for f in self.files)

    @property
    def status(self) -> str:
        if self.done == len(self.files):
            return "failed" if all(f.status == "failed" for f in self.files) else "done"
        return "running" if any(f.status != "queued" for f in self.files) else "queued"


class IngestJobs:
    """Jobs kept in memory for polling; the lasting record of each ingest is the audit log."""

    KEEP = 500

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}

    def new(self, owner: str, names: list[str]) -> Job:
        job = Job(id=uuid.uuid4().hex[:16], owner=owner, files=[FileResult(n) for n in names])
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self.KEEP:
                self._jobs.pop(next(iter(self._jobs)))
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

"""The server's long-lived resources and the threads that own them.

SQLite connections and model handles are not safe to share across arbitrary threads, and the web
framework runs handlers on a pool. So every governed call (knowledge base, gateway, audit, review)
runs on one dedicated "serve" thread that opened those resources, and ingestion runs on its own
thread with its own knowledge-base handle (two connections to one WAL database), so a long upload
never stalls questions. On a small on-premises machine the serve thread is not the bottleneck: the
model is.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sekisho.config import Settings
from sekisho.errors import SekishoError

T = TypeVar("T")


class _Owned:
    """Lazily-created resources belonging to one thread."""

    def __init__(self, name: str):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.resources: dict[str, Any] = {}

    def get(self, name: str, make: Callable[[], T]) -> T:
        if name not in self.resources:
            self.resources[name] = make()
        return self.resources[name]

    def close(self) -> None:
        """Close the resources on their own thread. The thread stays (idle threads cost nothing and
        exit with the process), so a closed runtime reopens its resources lazily if used again, as
        happens when an ASGI app is started and stopped several times (tests)."""

        def _close() -> None:
            for resource in reversed(list(self.resources.values())):
                close = getattr(resource, "close", None)
                if callable(close):
                    close()
            self.resources.clear()

        self.executor.submit(_close).result()


class Busy(SekishoError):
    """The serve thread's queue is full: 503 with Retry-After, which OpenAI SDKs retry with backoff."""

    code = "server_busy"
    headers = {"Retry-After": "5"}


class Runtime:
    # Requests waiting for the serve thread beyond this are refused at once (503 + Retry-After,
    # which OpenAI SDKs retry with backoff) instead of waiting past every client's timeout.
    MAX_WAITING = 256

    def __init__(self, settings: Settings, max_waiting: int = MAX_WAITING):
        self.settings = settings
        self.max_waiting = max_waiting
        self._serve = _Owned("sekisho-serve")
        self._ingest = _Owned("sekisho-ingest")
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self.jobs = IngestJobs()

    # --- running work on the owning threads ------------------------------------------------
    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run on the serve thread; raises Busy when too many requests are already waiting."""
        with self._waiting_lock:
            if self._waiting >= self.max_waiting:
                raise Busy(f"サーバーが混み合っています / server busy: {self._waiting} requests waiting")
            self._waiting += 1
        future = self._serve.executor.submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return await asyncio.wrap_future(future)

    def _done(self, _: Future) -> None:
        with self._waiting_lock:
            self._waiting -= 1

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Internal work on the serve thread (streams, ingest audit records): never refused."""
        return self._serve.executor.submit(fn, *args, **kwargs)

    def submit_ingest(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        return self._ingest.executor.submit(fn, *args, **kwargs)

    # --- resources; call these only from inside run()/submit() (the serve thread) -----------
    def kb(self):
        from sekisho.retrieval import open_knowledge_base

        return self._serve.get("kb", lambda: open_knowledge_base(self.settings))

    def ingest_kb(self):
        """The ingest thread's own knowledge-base handle; call only from submit_ingest()."""
        from sekisho.retrieval import open_knowledge_base

        return self._ingest.get("kb", lambda: open_knowledge_base(self.settings))

    def audit(self):
        from sekisho.audit.log import AuditLog

        return self._serve.get("audit", lambda: AuditLog.from_settings(self.settings))

    def gateway(self):
        from sekisho.guard.gateway import Gateway

        # One audit handle and review queue for the whole server: denials, decisions and
        # governed calls chain into the same log through the same connection.
        return self._serve.get("gateway", lambda: Gateway(self.settings, audit=self.audit(), review=self.reviews()))

    def reviews(self):
        from sekisho.audit.review import ReviewQueue

        return self._serve.get("reviews", lambda: ReviewQueue(self.audit()))

    def close(self) -> None:
        self._ingest.close()
        self._serve.close()


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

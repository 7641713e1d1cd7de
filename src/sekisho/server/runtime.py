"""The server's long-lived resources, shared by every request this process serves.

Governed requests run concurrently: each is a coroutine on the event loop whose checks run on the
request path's thread pool and whose model call runs as the backend can take it (request/calls.py),
so a model call in flight holds nothing another request needs. The knowledge base gives every
thread its own store connection (SQLite stays WAL, one writer at a time); the audit log serialises
appends in a short critical section. Ingestion runs on a thread of its own with its own
knowledge-base handle, so a long upload never stalls questions. When the store's vectors are
another embedder's than the configured one, a thread re-embeds them meanwhile (ReembedWorker).

Admission: at most `server.max_in_flight` governed requests run at once per process; more are
refused at once with 503 and Retry-After (OpenAI SDKs retry those with backoff) instead of waiting
past every client's timeout. Then the caller's quotas (quotas.py): a used-up quota is refused with
429 naming it and when it resets, and the refusal is audited. Every governed door passes here
before its response starts, and the request path charges each call's tokens as it records it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import Request

from sekisho.config import Settings
from sekisho.errors import SekishoError
from sekisho.server.quotas import QuotaExceeded, Quotas
from sekisho.server.security import Caller

log = logging.getLogger("sekisho.server")

T = TypeVar("T")


class Busy(SekishoError):
    """Too many requests in flight: 503 with Retry-After, which OpenAI SDKs retry with backoff."""

    code = "server_busy"
    headers = {"Retry-After": "5"}


class Runtime:
    def __init__(self, settings: Settings, max_in_flight: int | None = None, quotas: Quotas | None = None,
                 audit_observers: tuple[Callable[[str, dict[str, Any], float], None], ...] = ()):
        self.settings = settings
        self.audit_observers = audit_observers  # e.g. the metrics, told of every durable record
        self.max_in_flight = max_in_flight or settings.server.max_in_flight
        self.quotas = quotas  # None: nothing is counted (a runtime without an access database)
        self._lock = threading.RLock()  # a resource's maker asks for the resources it is built on
        self._resources: dict[str, Any] = {}
        self._in_flight = 0
        self.ingest = IngestWorker(self)
        self.reembed = ReembedWorker(self)

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

        def make() -> AuditLog:
            log = AuditLog.from_settings(self.settings)
            log.observers.extend(self.audit_observers)
            return log

        return self._get("audit", make)

    def reviews(self):
        from sekisho.audit.review import ReviewQueue

        return self._get("reviews", lambda: ReviewQueue(self.audit()))

    def jobs(self):
        """The durable upload queue, in the store's database, its files spooled beside the store
        (beside the configuration for PostgreSQL: servers on several hosts need that folder shared)."""
        from sekisho.config import upload_spool
        from sekisho.ingest.jobs import JobQueue

        def make() -> JobQueue:
            return JobQueue(self.kb().store.db, upload_spool(self.settings))

        return self._get("jobs", make)

    def conversations(self):
        """Conversations and feedback, in the store's database."""
        from sekisho.conversations import Conversations

        return self._get("conversations", lambda: Conversations(self.kb().store.db))

    def catalog(self):
        """The task apps: shipped, and the organisation's own folder (apps.folder)."""
        from sekisho.apps import Catalog

        return self._get("catalog", lambda: Catalog.from_settings(self.settings))

    def path(self):
        from sekisho.request import RequestPath

        # One audit handle and review queue for the whole server: denials, decisions and
        # governed calls chain into the same log.
        return self._get("path", lambda: RequestPath(self.settings, audit=self.audit(), review=self.reviews(),
                                                      threads=self.settings.server.threads,
                                                      charge=self.quotas.charge if self.quotas else None))

    # --- running work ---------------------------------------------------------------------------

    @asynccontextmanager
    async def admitted(self, caller: Caller | None, request: Request | None = None) -> AsyncIterator[None]:
        """A governed request's slot, once `caller`'s quotas allow the request (None: a caller no
        quota applies to); Busy when every slot is taken, QuotaExceeded when a quota is used up.
        The slot comes first, so a request refused as busy does not use up its caller's quota.
        `request` (the HTTP request) names the route in the refusal's audit record."""
        with self._lock:
            if self._in_flight >= self.max_in_flight:
                raise Busy(f"サーバーが混み合っています / server busy: {self._in_flight} requests in flight")
            self._in_flight += 1
        try:
            if caller is not None and self.quotas is not None:
                await self._within_quota(caller, request)
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _within_quota(self, caller: Caller, request: Request | None) -> None:
        try:
            await self.run(self.quotas.admit, caller.principal, caller.key)  # type: ignore[union-attr]
        except QuotaExceeded as exc:
            record = {"status": 429, "reason": str(exc), "principal": caller.principal.name,
                      "role": caller.principal.role.value, "quota": exc.use.to_json(),
                      "method": request.method if request else None, "path": request.url.path if request else None,
                      "client": request.client.host if request and request.client else None}
            try:
                await self.run(self.audit().append, "access.denied", record)
            except Exception:  # noqa: BLE001 - the refusal stands even if recording it failed; the log says so
                log.exception("could not audit a quota refusal: %s", record)
            raise

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking call (store, audit, search) off the event loop, on the request path's pool."""
        return await self.path().off_loop(fn, *args, **kwargs)

    def close(self) -> None:
        """Stop ingesting (the file in hand may finish within server.shutdown_grace_s, else it
        goes back to the queue), then close every resource. A closed runtime reopens them lazily
        if used again, as happens when an ASGI app is started and stopped several times (tests)."""
        grace = self.settings.server.shutdown_grace_s
        if not self.reembed.stop(grace):
            log.warning("re-embedding did not stop within %.0f s of shutdown; what it staged is kept, and the "
                        "next start goes on from there", grace)
        if not self.ingest.stop(grace):
            log.warning("an ingest did not finish within %.0f s of shutdown; its file is queued again, to be "
                        "ingested at the next start", grace)
        with self._lock:
            resources, self._resources = self._resources, {}
        for resource in reversed(list(resources.values())):
            close = getattr(resource, "close", None)
            if callable(close):
                close()


# --- background ingestion -------------------------------------------------------------------

class IngestWorker:
    """One thread per worker process taking uploaded files from the durable queue (ingest/jobs.py)
    one at a time: a bad file fails alone and says why, and each outcome is audited. Woken at once
    by uploads to this process, it also looks every second for files other processes queued.
    Stopping takes no further file and lets the one in hand finish within `stop`'s bound; past it
    the file is abandoned: put back in the queue, its outcome never recorded by this process (the
    thread cannot be interrupted, and dies with the process). Queued files wait for the next start
    (or another worker)."""

    POLL_S = 1.0

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # The running thread's own flags: a thread abandoned at one stop must stay abandoned when
        # the app starts again in the same process and a new thread takes over.
        self._stopping = threading.Event()
        self._abandoned = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._stopping.is_set():
                self._stopping, self._abandoned = threading.Event(), threading.Event()
                self._thread = threading.Thread(target=self._run, args=(self._stopping, self._abandoned),
                                                name="sekisho-ingest", daemon=True)
                self._thread.start()

    def wake(self) -> None:
        self.start()
        self._wake.set()

    def stop(self, timeout: float) -> bool:
        """Stop taking files; True when the file in hand (if any) finished within `timeout`, else
        it is abandoned and back in the queue."""
        from sekisho.ingest.jobs import this_worker

        with self._lock:
            thread, stopping, abandoned = self._thread, self._stopping, self._abandoned
        stopping.set()
        self._wake.set()
        if thread is None:
            return True
        thread.join(timeout)
        if not thread.is_alive():
            return True
        abandoned.set()
        me = this_worker()
        try:
            self.runtime.jobs().recover(alive=lambda worker: worker != me)
        except Exception:  # noqa: BLE001 - the next start's recovery puts it back instead
            log.exception("could not put the abandoned ingest back in the queue")
        return False

    def _run(self, stopping: threading.Event, abandoned: threading.Event) -> None:
        from sekisho.ingest.jobs import this_worker

        worker = this_worker()
        try:
            queue = self.runtime.jobs()
            queue.recover()
        except Exception:  # noqa: BLE001 - the server stays up; uploads say the store is unusable
            log.exception("ingest worker cannot start")
            return
        while not stopping.is_set():
            try:
                claimed = queue.claim(worker)
            except Exception:  # noqa: BLE001 - a busy or failing database: look again shortly
                log.exception("cannot claim an ingest job")
                claimed = None
            if claimed is None:
                self._wake.wait(self.POLL_S)
                self._wake.clear()
                continue
            self._ingest(queue, claimed, abandoned)

    def _ingest(self, queue: Any, claimed: Any, abandoned: threading.Event) -> None:
        from sekisho.ingest import IngestError, ingest_bytes

        result: dict[str, Any] = {}
        try:
            data = claimed.payload.read_bytes()
            outcome = ingest_bytes(self.runtime.kb(), claimed.name, data, tags=claimed.tags,
                                   max_bytes=self.runtime.settings.server.max_upload_mb * 1024 * 1024)
            result = {"status": "done", "document_id": outcome.document.id, "chunks": outcome.chunks}
        except IngestError as exc:
            result = {"status": "failed", "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - one broken file must not stop the queue
            result = {"status": "failed", "error": f"{claimed.name}: {type(exc).__name__}: {exc}"}
        if abandoned.is_set():
            return  # the file is back in the queue; its outcome here (maybe a closed store) is not its own
        self.runtime.audit().append("document.ingest", {
            "principal": claimed.owner, "job": claimed.job_id, "name": claimed.name, "tags": list(claimed.tags),
            "status": result["status"], "document_id": result.get("document_id"), "error": result.get("error")})
        queue.finish(claimed, result.pop("status"), **result)


# --- background re-embedding ----------------------------------------------------------------

class ReembedWorker:
    """One thread that re-embeds the store to the configured embedder (retrieval/reembed.py) when
    the store's vectors are another's; searches go on with the old embedder meanwhile and switch
    with the store. Failures (the embedding server down, another server holding the claim) are
    logged and tried again after RETRY_S, never taken down the server. Stopping lets the batch in
    hand finish within `stop`'s bound; what is staged stays staged for the next start."""

    RETRY_S = 30.0

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._stopping.is_set():
                self._stopping = threading.Event()
                self._thread = threading.Thread(target=self._run, args=(self._stopping,), name="sekisho-reembed",
                                                daemon=True)
                self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Stop after the batch in hand; True when the thread ended within `timeout`."""
        with self._lock:
            thread, stopping = self._thread, self._stopping
        stopping.set()
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self, stopping: threading.Event) -> None:
        from sekisho.retrieval.reembed import reembed

        while not stopping.is_set():
            try:
                kb = self.runtime.kb()
                kb.follow_store()
                if not kb.reembedding:
                    return
                log.info("re-embedding the store from %r to %r in the background", kb.searching_with, kb.embedder_name)
                if reembed(kb, stop=stopping):
                    log.info("the store is re-embedded: searches use %r", kb.embedder_name)
                    return
            except SekishoError as exc:
                log.warning("re-embedding paused (trying again in %.0f s): %s", self.RETRY_S, exc)
            except Exception:  # noqa: BLE001 - the server stays up; the next try may succeed
                log.exception("re-embedding failed (trying again in %.0f s)", self.RETRY_S)
            stopping.wait(self.RETRY_S)

"""Where a model call runs, by what the backend declares it can do.

- Capability.ASYNC (remote OpenAI-compatible servers): awaited on the backend's async client; no
  thread waits while the server works, so a hundred calls in flight cost a hundred sockets.
- Capability.CONCURRENT without ASYNC (the extractive answerer): on the request path's pool.
- Neither (a model decoding in this process, llama.cpp): queued on that model's own thread, so
  requests wait for the model they asked for, not for the server; other models and every other
  step go on. Run llama.cpp's server with parallel slots (README) to serve several at once.

A call that takes longer than the backend's timeout_s is a BackendError for the caller (audited by
the path); an in-process model cannot be interrupted mid-token, so its thread finishes the
abandoned call before taking the next.

Each call is metered (models/energy.py): its CallMeter brackets the call where it is awaited and
wraps the work where it runs, so that a thread clock is read on the thread doing the work.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from sekisho.models import Backend, BackendError, Capability, ChatRequest, Completion, ModelInfo
from sekisho.models.energy import CallMeter

T = TypeVar("T")
_END = object()


class ModelCalls:
    def __init__(self, pool: ThreadPoolExecutor, timeout_s: Callable[[str], float] | None = None) -> None:
        self._pool = pool
        self._queues: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()
        self._timeout_s = timeout_s or (lambda name: 600.0)

    def close(self) -> None:
        with self._lock:
            for queue in self._queues.values():
                queue.shutdown(wait=False, cancel_futures=True)
            self._queues.clear()

    def _queue(self, name: str) -> ThreadPoolExecutor:
        with self._lock:
            if name not in self._queues:
                self._queues[name] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{name}"[:15])
            return self._queues[name]

    def _executor(self, name: str, info: ModelInfo) -> ThreadPoolExecutor | None:
        """None: call in the caller's own thread."""
        return None if info.can(Capability.CONCURRENT) else self._queue(name)

    # --- from a thread (CLI, arena, the path's own steps) ----------------------------------------

    def run(self, name: str, info: ModelInfo, fn: Callable[..., T], *args: Any, meter: CallMeter) -> T:
        executor = self._executor(name, info)
        meter.begin()
        try:
            if executor is None:
                return meter.thread(fn)(*args)
            future = executor.submit(meter.thread(fn), *args)
            try:
                return future.result(timeout=self._timeout_s(name))
            except FutureTimeout:
                future.cancel()
                raise BackendError(f"backend {name!r}: no answer within {self._timeout_s(name):g} s") from None
        finally:
            meter.end()

    def stream(self, name: str, info: ModelInfo, backend: Backend, request: ChatRequest, *,
               meter: CallMeter) -> Iterator[str]:
        if self._executor(name, info) is None:
            return _metered(meter, meter.pieces(backend.stream(request)))
        return self._bridged(name, backend, request, meter)

    def _bridged(self, name: str, backend: Backend, request: ChatRequest, meter: CallMeter) -> Iterator[str]:
        """The model's stream produced on its own thread, handed over piece by piece; closing this
        iterator stops the model at its next piece."""
        import queue as queues

        pieces: queues.Queue = queues.Queue()
        stop = threading.Event()
        meter.begin()
        self._queue(name).submit(_produce, backend, request, stop, pieces.put, meter)
        try:
            while True:
                item = pieces.get(timeout=self._timeout_s(name))
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        except queues.Empty:
            raise BackendError(f"backend {name!r}: no answer within {self._timeout_s(name):g} s") from None
        finally:
            stop.set()
            meter.end()

    # --- from an event loop (the server) ----------------------------------------------------------

    async def arun(self, name: str, info: ModelInfo, fn: Callable[..., T], *args: Any, meter: CallMeter) -> T:
        loop = asyncio.get_running_loop()
        executor = self._executor(name, info) or self._pool
        meter.begin()
        try:
            return await self._bounded(name, loop.run_in_executor(executor, meter.thread(fn), *args))
        finally:
            meter.end()

    async def acomplete(self, name: str, info: ModelInfo, backend: Backend, request: ChatRequest, *,
                        meter: CallMeter) -> Completion:
        if info.can(Capability.ASYNC):
            meter.begin()
            try:
                return await self._bounded(name, backend.acomplete(request))  # type: ignore[attr-defined]
            finally:
                meter.end()
        return await self.arun(name, info, backend.complete, request, meter=meter)

    async def astream(self, name: str, info: ModelInfo, backend: Backend, request: ChatRequest, *,
                      meter: CallMeter) -> AsyncIterator[str]:
        """The model's pieces as they come. Closing the iterator (a client that went away) closes
        the backend's stream: the HTTP request to a remote server, or the local model's loop."""
        meter.begin()
        if info.can(Capability.ASYNC):
            stream = backend.astream(request)  # type: ignore[attr-defined]
            try:
                async for piece in stream:
                    yield piece
            finally:
                await stream.aclose()
                meter.end()
            return
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()
        executor = self._executor(name, info) or self._pool
        executor.submit(_produce, backend, request, stop,
                        lambda item: loop.call_soon_threadsafe(pieces.put_nowait, item), meter)
        try:
            while True:
                item = await asyncio.wait_for(pieces.get(), self._timeout_s(name))
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        except TimeoutError:
            raise BackendError(f"backend {name!r}: no answer within {self._timeout_s(name):g} s") from None
        finally:
            stop.set()
            meter.end()

    async def _bounded(self, name: str, awaitable: Any) -> Any:
        try:
            return await asyncio.wait_for(awaitable, self._timeout_s(name))
        except TimeoutError:
            raise BackendError(f"backend {name!r}: no answer within {self._timeout_s(name):g} s") from None


def _metered(meter: CallMeter, pieces: Iterator[str]) -> Iterator[str]:
    """`pieces` bracketed by the meter: begun when the first piece is asked for, ended when the
    stream ends or its reader closes it."""
    meter.begin()
    try:
        yield from pieces
    finally:
        close = getattr(pieces, "close", None)
        if callable(close):
            close()
        meter.end()


def _produce(backend: Backend, request: ChatRequest, stop: threading.Event, put: Callable[[Any], Any],
             meter: CallMeter) -> None:
    """Run a backend's stream on a worker thread, handing each piece to `put`, until it ends, fails
    or the reader sets `stop` (then the stream is closed, which ends the model's generation). Each
    piece is metered as it is made, on this thread, before it is handed over."""
    stream = meter.pieces(backend.stream(request))
    try:
        for piece in stream:
            if stop.is_set():
                break
            put(piece)
        put(_END)
    except BaseException as exc:  # noqa: BLE001 - handed to the reader, which raises it
        put(exc)
    finally:
        close = getattr(stream, "close", None)
        if callable(close):
            close()

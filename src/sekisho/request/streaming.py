"""Streaming on the same steps as whole answers: open the turn, call the model, conclude. Between
the call and the conclusion a `Gate` decides what the user may already see: text is released a
sentence at a time, once the sentence passed the output checks (similarity to registered works;
for answers, support by the sources). An output that turns out to need review stops the stream and
is held; what was already shown stays shown, which is why requests known to need review before the
call are not streamed, and why answers read passage by passage are released whole.

`GovernedStream` is for threads (the CLI), `AsyncGovernedStream` for the event loop (the server);
both: iterate for the text with masks restored, then `.result` is the Governed. Leaving the
iteration early (a client that went away) cancels the model call and records what was shown.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from sekisho.models import BackendError, Completion
from sekisho.request.turn import Turn

_SENTENCE_END = re.compile(r"[。！？!?\n]")


class Gate:
    """What of a growing output may be shown: everything up to the last sentence end that passes
    the path's release check, as long as nothing before it failed."""

    def __init__(self, releasable: Callable[[str], bool]) -> None:
        self._releasable = releasable
        self.shown: list[str] = []
        self.pending = ""
        self.held = False

    def feed(self, piece: str) -> str:
        """The text to show now (possibly empty)."""
        self.pending += piece
        if self.held:
            return ""
        cut = max((m.end() for m in _SENTENCE_END.finditer(self.pending)), default=0)
        if not cut:
            return ""
        if not self._releasable("".join(self.shown) + self.pending[:cut]):
            self.held = True
            return ""
        out, self.pending = self.pending[:cut], self.pending[cut:]
        self.shown.append(out)
        return out

    def finish(self) -> str:
        """The rest, if it may be shown."""
        if self.held or not self.pending or not self._releasable(self.text):
            return ""
        out, self.pending = self.pending, ""
        self.shown.append(out)
        return out

    @property
    def text(self) -> str:
        return "".join(self.shown) + self.pending

    @property
    def shown_chars(self) -> int:
        return sum(len(s) for s in self.shown)


class _Streamed:
    """The parts both stream classes share: how a turn is judged and concluded."""

    def __init__(self, path: Any, open_turn: Callable[[], Turn]) -> None:
        self._path = path
        self._open_turn = open_turn
        self.result: Any = None

    def _whole_first(self, turn: Turn) -> bool:
        """Held answers are never shown in part; passages read apart are answered once the
        readings are compared, then released whole if the checks pass."""
        return bool(turn.review_reasons) or self._path._reads_apart(turn)

    def _releasable(self, turn: Turn) -> Callable[[str], bool]:
        path = self._path

        def releasable(text: str) -> bool:
            if path._registry is not None and path.policy.review.copyright and path._check_output(text):
                return False
            if turn.kind == "ask":
                from sekisho.answer import check_faithfulness, is_not_found

                report = check_faithfulness(text, turn.request.passages or [])
                return not path.policy.review.holds_answer(report, not_found=is_not_found(text))
            return True

        return releasable

    def _completion(self, turn: Turn, gate: Gate, started: float) -> Completion:
        backend = self._path.backend(turn.backend_name)
        return Completion(text=gate.text, model=turn.info.model,
                          prompt_tokens=sum(backend.count_tokens(m.content) for m in turn.outbound.messages),
                          completion_tokens=backend.count_tokens(gate.text), latency_s=time.perf_counter() - started)

    def _whole_text(self) -> str:
        return self.result.text if self.result.status == "ok" else ""

    @staticmethod
    def _cancelled(gate: Gate, turn: Turn) -> dict[str, Any]:
        return {"output": turn.session.mask_known("".join(gate.shown)), "shown_chars": gate.shown_chars}

    def _charge_abandoned(self, turn: Turn, gate: Gate) -> None:
        """A stream its reader left was still a model call: its prompt and the text made so far are
        charged, so leaving just before the end is not a way around a token quota. Counting may ask
        a model server (its tokenizer), so this runs on a thread, after the cancelled record."""
        if self._path._charge is None:  # nobody counts (the CLI): nothing to count for
            return
        try:
            used = self._completion(turn, gate, turn.started)
        except BackendError:
            return
        self._path._charge_tokens(turn, {"tokens": {"prompt": used.prompt_tokens, "completion": used.completion_tokens}})


class GovernedStream(_Streamed):
    def __iter__(self) -> Iterator[str]:
        path = self._path
        turn = self._open_turn()
        if turn.blocked:
            self.result = path._blocked(turn)
            return
        if self._whole_first(turn):
            self.result = path.conclude(turn, path._call(turn))
            if text := self._whole_text():
                yield text
            return
        gate, started = Gate(self._releasable(turn)), time.perf_counter()
        pieces = path.calls.stream(turn.backend_name, turn.info, path.backend(turn.backend_name), turn.outbound,
                                   meter=path.meter(turn))
        try:
            for piece in turn.session.restore_stream(pieces, turn.principal):
                if out := gate.feed(piece):
                    yield out
        except BackendError as exc:
            path._record(turn, "error", extra={"error": str(exc), "shown_chars": gate.shown_chars})
            raise
        except GeneratorExit:
            # The reader went away mid-answer (closed connection, Ctrl-C): what it saw is audited.
            path._record(turn, "cancelled", extra=self._cancelled(gate, turn))
            self._charge_abandoned(turn, gate)
            raise
        finally:
            close = getattr(pieces, "close", None)
            if callable(close):
                close()
        if out := gate.finish():
            yield out
        self.result = path.conclude(turn, self._completion(turn, gate, started),
                                    {"streamed": True, "shown_chars": gate.shown_chars})


class AsyncGovernedStream(_Streamed):
    def __aiter__(self) -> AsyncIterator[str]:
        return self._run()

    async def start(self) -> Any:
        """Open the turn (retrieval, input checks) before the response starts, so that a blocked
        request can still be answered with an error status: returns its (recorded) outcome when
        blocked, else None. Iterating afterwards continues the turn."""
        path = self._path
        self._turn = await path.off_loop(self._open_turn)
        if self._turn.blocked:
            self.result = await path.off_loop(path._blocked, self._turn)
        return self.result

    async def _run(self) -> AsyncIterator[str]:
        path = self._path
        if getattr(self, "_turn", None) is None:
            await self.start()
        turn = self._turn
        if self.result is not None:  # blocked
            return
        if self._whole_first(turn):
            self.result = await path.off_loop(path.conclude, turn, await path._acall(turn))
            if text := self._whole_text():
                yield text
            return
        gate, started = Gate(self._releasable(turn)), time.perf_counter()
        pieces = path.calls.astream(turn.backend_name, turn.info, path.backend(turn.backend_name), turn.outbound,
                                    meter=path.meter(turn))
        restoring = turn.session.restoring(turn.principal)
        try:
            async for piece in pieces:
                if out := gate.feed(restoring.feed(piece)):
                    yield out
            if out := gate.feed(restoring.flush()):
                yield out
        except BackendError as exc:
            await path.off_loop(path._record, turn, "error", extra={"error": str(exc), "shown_chars": gate.shown_chars})
            raise
        except BaseException:
            # The client went away (the server cancels the response) or the loop is closing: the
            # model call is cancelled by closing its stream, and what was shown is recorded.
            if not turn.recorded:
                path._record(turn, "cancelled", extra=self._cancelled(gate, turn))
                path.pool.submit(self._charge_abandoned, turn, gate)
            raise
        finally:
            await pieces.aclose()
        if out := gate.finish():
            yield out
        # Counting the tokens may ask the model server's tokenizer: off the loop, with the checks.
        self.result = await path.off_loop(lambda: path.conclude(turn, self._completion(turn, gate, started),
                                                                {"streamed": True, "shown_chars": gate.shown_chars}))

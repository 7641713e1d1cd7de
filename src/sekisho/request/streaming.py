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

from sekisho.errors import one_line
from sekisho.guard.errors import ScanBudgetExceeded
from sekisho.models import BackendError, Completion
from sekisho.request.text import valid_text
from sekisho.request.turn import Turn

_SENTENCE_END = re.compile(r"[。！？!?\n]")
# Once this much has been shown, a release check waits for a tenth as much new text: every check
# reads the whole output so far, so checking at every sentence of a long output is quadratic
# (a 100,000-character answer would be checked 3,000 times). Below it, every sentence is checked.
_CHECK_EVERY_SENTENCE_UP_TO = 2_000


class Gate:
    """What of a growing output may be shown: everything up to the last sentence end that passes
    the path's release check, as long as nothing before it failed. The check says True (show
    it), False (hold: nothing more is shown) or None (not yet: wait for more text). `releasable`
    None: nothing to check, every sentence is shown as it ends. Work per piece is proportional to
    the piece, and an output past `max_chars` (what the output checks can read) stops the stream."""

    def __init__(self, releasable: Callable[[str], bool | None] | None, max_chars: int) -> None:
        self._releasable = releasable
        self._max_chars = max_chars
        self.shown: list[str] = []
        self._pending: list[str] = []  # not yet shown; no sentence end before the last piece's
        self._pending_chars = 0
        self.shown_chars = 0
        self.held = False

    def feed(self, piece: str) -> str:
        """The text to show now (possibly empty)."""
        if self.shown_chars + self._pending_chars + len(piece) > self._max_chars:
            raise ScanBudgetExceeded(f"guard: the model's answer ran past the {self._max_chars:,} characters "
                                     "the output checks read; ask for a shorter answer")
        self._pending.append(piece)
        self._pending_chars += len(piece)
        ends = None if self.held else _last_sentence_end(piece)
        if ends is None or (self._releasable is not None and self.shown_chars > _CHECK_EVERY_SENTENCE_UP_TO
                            and self._pending_chars < self.shown_chars // 10):
            return ""
        pending = "".join(self._pending)
        cut = len(pending) - len(piece) + ends
        verdict = True if self._releasable is None else self._releasable("".join(self.shown) + pending[:cut])
        if not verdict:
            self.held = verdict is False
            return ""
        return self._show(pending, cut)

    def finish(self) -> str:
        """The rest, if it may be shown (waiting is over: "not yet" is now "no")."""
        pending = "".join(self._pending)
        if self.held or not pending or (self._releasable is not None and not self._releasable(self.text)):
            return ""
        return self._show(pending, len(pending))

    def _show(self, pending: str, cut: int) -> str:
        out, rest = pending[:cut], pending[cut:]
        self._pending, self._pending_chars = ([rest], len(rest)) if rest else ([], 0)
        self.shown.append(out)
        self.shown_chars += len(out)
        return out

    @property
    def text(self) -> str:
        return "".join(self.shown) + "".join(self._pending)


def _last_sentence_end(piece: str) -> int | None:
    """The offset just after the last sentence end in `piece`, or None."""
    found = None
    for found in _SENTENCE_END.finditer(piece):
        pass
    return found.end() if found is not None else None


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

    def _gate(self, turn: Turn) -> Gate:
        return Gate(self._releasable(turn), self._path.max_output_chars)

    def _releasable(self, turn: Turn) -> Callable[[str], bool | None] | None:
        """The release check of a growing output, or None when there is nothing to check before
        showing it (a chat without a copyright registry: personal data in it is flagged at the
        end, where the whole output is read)."""
        path = self._path
        if turn.kind != "ask" and not (path._registry is not None and path.policy.review.copyright):
            return None

        def releasable(text: str) -> bool:
            if path._registry is not None and path.policy.review.copyright and path._check_output(text):
                return False
            if turn.kind == "ask":
                from sekisho.answer import check_faithfulness, is_not_found

                report = check_faithfulness(text, turn.request.passages or [])
                reasons = path.policy.review.answer_reasons(report, not_found=is_not_found(text))
                if reasons == ("uncited",):
                    return None  # not yet: the citation often follows the sentence's full stop
                return not reasons
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
        gate, started = self._gate(turn), time.perf_counter()
        pieces = path.calls.stream(turn.backend_name, turn.info, path.backend(turn.backend_name), turn.outbound,
                                   meter=path.meter(turn))
        try:
            for piece in turn.session.restore_stream(map(valid_text, pieces), turn.principal):
                if out := gate.feed(piece):
                    yield out
        except Exception as exc:  # noqa: BLE001 - a failing model or check: recorded, then raised
            path._record(turn, "error", extra={"error": one_line(exc), "shown_chars": gate.shown_chars})
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
        gate, started = self._gate(turn), time.perf_counter()
        pieces = path.calls.astream(turn.backend_name, turn.info, path.backend(turn.backend_name), turn.outbound,
                                    meter=path.meter(turn))
        restoring = turn.session.restoring(turn.principal)
        try:
            async for piece in pieces:
                if out := gate.feed(restoring.feed(valid_text(piece))):
                    yield out
            if out := gate.feed(restoring.flush()):
                yield out
        except Exception as exc:  # noqa: BLE001 - a failing model or check: recorded, then raised
            await path.off_loop(path._record, turn, "error", extra={"error": one_line(exc),
                                                                    "shown_chars": gate.shown_chars})
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

"""The governed request path: every door (CLI, native API, OpenAI-compatible gateway, arena, apps)
asks through `RequestPath`, which owns a request from retrieval to its one audit record.

    path = RequestPath(settings)
    governed = path.ask("住民票の写しの手数料は？", principal=alice, backend="extractive", kb=kb)
    governed.status, governed.answer.text, governed.audit_seq

Sync methods (complete, ask, choose, stream, ask_stream, release) for threads; `a`-prefixed ones
(acomplete, aask, astream, aask_stream) for an event loop.
"""

from sekisho.request.outcome import Governed, GuardAction
from sekisho.request.path import NO_PASSAGES, RequestPath, capped
from sekisho.request.streaming import AsyncGovernedStream, GovernedStream
from sekisho.request.text import InvalidText, check_text, valid_text
from sekisho.request.turn import Turn

__all__ = ["NO_PASSAGES", "AsyncGovernedStream", "Governed", "GovernedStream", "GuardAction", "InvalidText",
           "RequestPath", "Turn", "capped", "check_text", "valid_text"]

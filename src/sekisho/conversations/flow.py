"""A question asked inside a conversation: made standalone from what came before, answered through
the governed request path (streamed), and kept as the conversation's next turn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sekisho.conversations.rewrite import condense_request, condensed, standalone_question
from sekisho.conversations.store import Conversations, Turn
from sekisho.identity import Principal
from sekisho.models import Capability
from sekisho.request import Governed, RequestPath


@dataclass
class Asked:
    """The outcome of one turn, once its stream ended: what was stored."""

    turn: Turn
    governed: Governed


async def make_standalone(path: RequestPath, question: str, history: list[tuple[str, str, str]], *,
                          principal: Principal, backend: str, meta: dict[str, Any]) -> str:
    """`history`: (question, standalone question, answer) of earlier turns. A generative backend
    condenses the conversation (a governed request of its own, audited with purpose "condense");
    otherwise, or when that request is refused, the rule carries the previous subject over."""
    rule = standalone_question(question, [standalone for _, standalone, _ in history])
    if not history or not path.backend(backend).info().can(Capability.GENERATE):
        return rule
    governed = await path.acomplete(condense_request(question, [(q, a) for q, _, a in history]), backend=backend,
                                    principal=principal, purpose="condense", meta=meta)
    return condensed(governed.completion.text, question, rule) if governed.status == "ok" else rule


async def ask(path: RequestPath, conversations: Conversations, *, principal: Principal, conversation_id: str,
              question: str, backend: str, kb: Any, k: int, regenerate: bool = False,
              result: list[Asked] | None = None) -> AsyncIterator[str]:
    """Stream the answer's text; when the stream ends the turn is stored and appended to `result`.
    `regenerate` asks the last question again and replaces its turn."""
    conversation = await path.off_loop(conversations.get, principal.name, conversation_id)
    turns = list(conversation.turns)
    if regenerate and turns:
        question = turns.pop().question
    # A held answer still carries its question's subject; its text waits for a reviewer, so it is
    # left out of what the model reads. Refused and blocked turns add nothing.
    history = [(t.question, t.standalone, t.answer if t.status == "ok" else "") for t in turns
               if t.status in ("ok", "held")]
    meta = {"conversation_id": conversation_id}
    standalone = await make_standalone(path, question, history, principal=principal, backend=backend, meta=meta)
    stream = path.aask_stream(standalone, principal=principal, backend=backend, kb=kb, k=k, meta=meta)
    async for piece in stream:
        yield piece
    governed: Governed = stream.result
    turn = await path.off_loop(conversations.add_turn, principal.name, conversation_id,
                                turn_of(question, standalone, governed), replace_last=regenerate and bool(conversation.turns))
    if result is not None:
        result.append(Asked(turn, governed))


def turn_of(question: str, standalone: str, governed: Governed) -> Turn:
    """What the conversation keeps of a governed answer: the text the owner saw, its sources and
    support verdict, its audit number."""
    answer = governed.answer
    ok = governed.status == "ok" and answer is not None
    details: dict[str, Any] = {"reason": governed.reason, "findings": [f.to_json() for f in governed.findings],
                               "energy": governed.energy.to_json() if governed.energy else None}
    if ok:
        report = answer.faithfulness
        details.update({
            "not_found": answer.not_found,
            "sources": [{"n": n, "chunk_id": h.chunk.id, "document_id": h.document.id, "title": h.document.title,
                         "location": h.chunk.location.label()} for n, h in enumerate(answer.hits, 1)],
            "support": {"score": round(float(report.score), 3), "faithful": bool(report.faithful),
                        "unsupported": [s.text for s in report.unsupported],
                        "invalid_citations": list(report.invalid_citations)}})
    return Turn(0, question, standalone, answer.text if ok else governed.message, governed.status, governed.backend,
                governed.audit_seq, governed.review_id, details)

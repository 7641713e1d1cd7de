"""Conversations over the knowledge base (/api/conversations) and feedback on answers
(/api/feedback). Every question goes through the governed request path and is audited with its
conversation id; the turns are kept for their owner only."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field

from sekisho.conversations import Asked, Conversation, ask, export_markdown
from sekisho.errors import Forbidden
from sekisho.models import BackendError
from sekisho.server.deps import AppState, audit_event, require, state_of
from sekisho.server.errors import ErrorResponse
from sekisho.server.markdown import render
from sekisho.server.security import Caller, Permission

router = APIRouter(prefix="/api", tags=["conversations"],
                   responses={code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 429)})
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ConversationCreate(BaseModel):
    title: str = Field(default="", max_length=200)


class ConversationRename(BaseModel):
    title: str = Field(min_length=1, max_length=200)


class MessageIn(BaseModel):
    content: str = Field(min_length=1, max_length=4000)
    backend: str | None = Field(default=None, max_length=200)
    k: int = Field(default=5, ge=1, le=50)
    stream: bool = False


class RegenerateIn(BaseModel):
    backend: str | None = Field(default=None, max_length=200)
    k: int = Field(default=5, ge=1, le=50)
    stream: bool = False


class FeedbackIn(BaseModel):
    # A record number SQLite can hold (a larger one was a 500); 2**53, not 2**63 - 1, because the
    # spec states its bounds as JSON numbers, which hold integers exactly only up to there.
    audit_seq: int = Field(ge=1, le=2**53)
    rating: Literal[1, -1]
    reason: str = Field(default="", max_length=1000)


def _conversations(state: AppState):
    return state.runtime.conversations()


def conversation_out(conversation: Conversation) -> dict[str, Any]:
    out = conversation.to_json()
    for turn in out["turns"]:
        turn["html"] = str(render(turn["answer"], turn.get("sources") or ()))
    return out


@router.get("/conversations")
async def list_conversations(request: Request, caller: Caller = require(Permission.CHAT)) -> dict[str, Any]:
    state = state_of(request)
    found = await state.runtime.run(lambda: _conversations(state).list(caller.principal.name))
    return {"conversations": [{"id": c.id, "title": c.title, "updated_at": c.updated_at} for c in found]}


@router.post("/conversations", status_code=201)
async def create_conversation(request: Request, body: ConversationCreate | None = None,
                              caller: Caller = require(Permission.CHAT)) -> dict[str, Any]:
    state = state_of(request)
    created = await state.runtime.run(lambda: _conversations(state).create(caller.principal.name,
                                                                           body.title if body else ""))
    return conversation_out(created)


@router.get("/conversations/{conversation_id}")
async def get_conversation(conversation_id: str, request: Request,
                           caller: Caller = require(Permission.CHAT)) -> dict[str, Any]:
    state = state_of(request)
    return conversation_out(await state.runtime.run(_conversations(state).get, caller.principal.name, conversation_id))


@router.patch("/conversations/{conversation_id}")
async def rename_conversation(conversation_id: str, body: ConversationRename, request: Request,
                              caller: Caller = require(Permission.CHAT)) -> dict[str, Any]:
    state = state_of(request)
    renamed = await state.runtime.run(_conversations(state).rename, caller.principal.name, conversation_id, body.title)
    return conversation_out(renamed)


@router.delete("/conversations/{conversation_id}")
async def delete_conversation(conversation_id: str, request: Request,
                              caller: Caller = require(Permission.CHAT)) -> dict[str, Any]:
    state = state_of(request)
    await state.runtime.run(_conversations(state).delete, caller.principal.name, conversation_id)
    await audit_event(state, "conversation.delete", {"principal": caller.principal.name,
                                                     "conversation_id": conversation_id})
    return {"id": conversation_id, "deleted": True}


@router.get("/conversations/{conversation_id}/export", response_class=PlainTextResponse,
            responses={200: {"content": {"text/markdown": {}, "application/json": {}}}})
async def export_conversation(conversation_id: str, request: Request,
                              format: Literal["markdown", "json"] = Query("markdown"),
                              caller: Caller = require(Permission.CHAT)) -> PlainTextResponse:
    state = state_of(request)
    conversation = await state.runtime.run(_conversations(state).get, caller.principal.name, conversation_id)
    if format == "json":
        body, media, suffix = json.dumps(conversation.to_json(), ensure_ascii=False, indent=2), "application/json", "json"
    else:
        body, media, suffix = export_markdown(conversation), "text/markdown; charset=utf-8", "md"
    return PlainTextResponse(body, media_type=media,
                             headers={"Content-Disposition": f'attachment; filename="conversation-{conversation_id}.{suffix}"'})


@router.post("/conversations/{conversation_id}/messages")
async def post_message(conversation_id: str, body: MessageIn, request: Request,
                       caller: Caller = require(Permission.CHAT)) -> Any:
    """Ask within the conversation: the follow-up is made standalone from the conversation before
    retrieval. `stream: true` answers with server-sent events: `delta` ({"text"}) as sentences
    pass the output checks, then `done` (the stored turn, with its rendered HTML) or `error`."""
    return await _answer(request, caller, conversation_id, body.content, body.backend, body.k, body.stream, False)


@router.post("/conversations/{conversation_id}/regenerate")
async def regenerate(conversation_id: str, request: Request, body: RegenerateIn | None = None,
                     caller: Caller = require(Permission.CHAT)) -> Any:
    """Ask the last question again (another model, say); its turn is replaced."""
    body = body or RegenerateIn()
    return await _answer(request, caller, conversation_id, "", body.backend, body.k, body.stream, True)


async def _answer(request: Request, caller: Caller, conversation_id: str, content: str, backend: str | None, k: int,
                  stream: bool, regenerate: bool) -> Any:
    from sekisho.server.openai_api import resolve_model

    state = state_of(request)
    name, _ = resolve_model(state, backend or state.settings.models.default, True)
    path = state.runtime.path()
    # Ownership is checked before anything streams, so a stranger's id is a plain 404.
    await state.runtime.run(_conversations(state).get, caller.principal.name, conversation_id)
    kb = await state.runtime.run(state.runtime.kb)
    admission = state.runtime.admitted(caller, request)
    await admission.__aenter__()
    result: list[Asked] = []
    pieces = ask(path, _conversations(state), principal=caller.principal, conversation_id=conversation_id,
                 question=content, backend=name, kb=kb, k=k, regenerate=regenerate, result=result)
    if not stream:
        try:
            async for _ in pieces:
                pass
        finally:
            await admission.__aexit__(None, None, None)
        return _turn_out(result[0])
    return StreamingResponse(_events(pieces, result, admission), media_type="text/event-stream", headers=_SSE_HEADERS)


def _turn_out(asked: Asked) -> dict[str, Any]:
    out = asked.turn.to_json()
    out["html"] = str(render(asked.turn.answer, out.get("sources") or ()))
    return out


async def _events(pieces: AsyncIterator[str], result: list[Asked], admission: Any) -> AsyncIterator[str]:
    def event(name: str, data: dict[str, Any]) -> str:
        return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

    try:
        try:
            async for piece in pieces:
                yield event("delta", {"text": piece})
        except (BackendError, Forbidden) as exc:
            yield event("error", {"message": str(exc)})
            return
        yield event("done", _turn_out(result[0]))
    finally:
        await admission.__aexit__(None, None, None)


@router.post("/feedback", tags=["feedback"])
async def feedback(body: FeedbackIn, request: Request, caller: Caller = require(Permission.CHAT)) -> dict[str, Any]:
    """👍/👎 on an answer the caller received, with an optional reason: stored (one rating per
    answer and person, the last one counts) and audited, so the analytics count it."""
    state = state_of(request)

    def record() -> None:
        entry = state.runtime.audit().get(body.audit_seq)
        mine = entry is not None and (entry.record or {}).get("principal") == caller.principal.name
        if not mine and not _conversations(state).owns_answer(caller.principal.name, body.audit_seq):
            raise Forbidden(f"audit record {body.audit_seq} is not an answer you received")
        _conversations(state).record_feedback(caller.principal.name, body.audit_seq, body.rating, body.reason)

    await state.runtime.run(record)
    reason = await state.runtime.run(state.runtime.path().audit_copy, body.reason) if body.reason else ""
    await audit_event(state, "feedback", {"principal": caller.principal.name, "role": caller.principal.role.value,
                                          "audit_seq": body.audit_seq, "rating": body.rating, "reason": reason})
    return {"audit_seq": body.audit_seq, "rating": body.rating}

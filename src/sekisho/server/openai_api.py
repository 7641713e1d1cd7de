"""The OpenAI-compatible gateway: /v1/chat/completions (plain and SSE), /v1/models,
/v1/embeddings. The official `openai` SDK works against it unchanged. Every call goes through the
Gateway, so a client choosing this door gets the same guards, masking, routing, audit and review
holds as the web UI."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from sekisho.models.protocol import BackendError, ChatRequest, Message
from sekisho.server.deps import AppState, require, state_of
from sekisho.server.errors import ApiError, ErrorResponse
from sekisho.server.governed import HELD_MESSAGE, blocked_error, findings_out, sources_out
from sekisho.server.schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessageIn,
    Choice,
    EmbeddingItem,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    ModelCard,
    ModelList,
    SekishoInfo,
    Usage,
)
from sekisho.server.security import Caller, Permission

RAG_PREFIX = "sekisho-rag/"
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 429, 502)
}

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], responses=_ERRORS)


def _backend_names(state: AppState) -> list[str]:
    from sekisho.models import backend_names

    return list(backend_names(state.settings))


def resolve_model(state: AppState, model: str, rag_flag: bool) -> tuple[str, bool]:
    """(backend name, use retrieval) for a requested model id; 404 for an unknown one."""
    names = _backend_names(state)
    rag = rag_flag
    name = model
    if model.startswith(RAG_PREFIX):
        name, rag = model[len(RAG_PREFIX):], True
    if name not in names:
        raise ApiError(404, f"model '{model}' does not exist; GET /v1/models lists the models",
                       code="model_not_found", param="model")
    return name, rag


def _text_of(message: ChatMessageIn) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    parts = []
    for part in message.content:
        if part.type != "text" or part.text is None:
            raise ApiError(400, f"content part type '{part.type}' is not supported; send text",
                           code="unsupported_content", param="messages")
        parts.append(part.text)
    return "".join(parts)


def to_chat_request(body: ChatCompletionRequest) -> ChatRequest:
    messages = []
    for m in body.messages:
        if m.role == "tool":
            raise ApiError(400, "tool messages are not supported", code="unsupported_content", param="messages")
        role = "system" if m.role == "developer" else m.role
        messages.append(Message(role=role, content=_text_of(m)))
    stop = [body.stop] if isinstance(body.stop, str) else body.stop
    return ChatRequest(
        messages=messages,
        max_tokens=body.max_completion_tokens or body.max_tokens or 512,
        temperature=body.temperature if body.temperature is not None else 0.0,
        stop=stop,
    )


def last_user_text(request: ChatRequest) -> str:
    for m in reversed(request.messages):
        if m.role == "user" and m.content.strip():
            return m.content
    raise ApiError(400, "retrieval answers need a non-empty user message", code="invalid_request", param="messages")


def governed_call(state: AppState, caller: Caller, backend: str, rag: bool, k: int, request: ChatRequest):
    """Runs on the serve thread: the one place /v1 and the web chat reach the Gateway."""
    gateway = state.runtime.gateway()
    try:
        if rag:
            return gateway.ask(last_user_text(request), principal=caller.principal, backend=backend,
                               kb=state.runtime.kb(), k=k)
        return gateway.complete(request, backend=backend, principal=caller.principal)
    except BackendError as exc:
        raise ApiError(502, f"backend '{backend}': {exc}", code="backend_error") from None


def completion_from(governed: Any, *, model: str, backend: str, rag: bool) -> ChatCompletion:
    status = governed.status
    if status == "blocked":
        raise blocked_error(governed)
    sources = []
    faithfulness = None
    if rag:
        answer = getattr(governed, "answer", None)
        completion = getattr(answer, "completion", None) if answer is not None else None
        text = answer.text if answer is not None else None
        if answer is not None:
            sources = sources_out(answer.hits)
            faithfulness = _faithfulness_dict(answer.faithfulness)
    else:
        completion = governed.completion
        text = completion.text if completion is not None else None
    if status == "held":
        text = HELD_MESSAGE
    prompt_tokens = getattr(completion, "prompt_tokens", 0) or 0
    completion_tokens = getattr(completion, "completion_tokens", 0) or 0
    finish = "content_filter" if status == "held" else (getattr(completion, "finish_reason", "stop") or "stop")
    if finish not in ("stop", "length", "content_filter"):
        finish = "stop"
    return ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=model,
        choices=[Choice(message=AssistantMessage(content=text or ""), finish_reason=finish)],
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                    total_tokens=prompt_tokens + completion_tokens),
        sekisho=SekishoInfo(status=status, backend=backend, audit_seq=getattr(governed, "audit_seq", None),
                            review_id=getattr(governed, "review_id", None),
                            findings=findings_out(getattr(governed, "findings", ())),
                            sources=sources if status == "ok" else [], faithfulness=faithfulness),
    )


def _faithfulness_dict(report: Any) -> dict[str, Any] | None:
    if report is None:
        return None
    if hasattr(report, "__dataclass_fields__"):
        from dataclasses import asdict

        return json.loads(json.dumps(asdict(report), ensure_ascii=False, default=str))
    return {"score": getattr(report, "score", None)}


def _chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None,
           extra: dict[str, Any] | None = None) -> str:
    payload: dict[str, Any] = {
        "id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if extra:
        payload.update(extra)
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def stream_completion(result: ChatCompletion, include_usage: bool) -> AsyncIterator[str]:
    """SSE in OpenAI's exact chunk shapes: a role delta, content deltas, a finish chunk carrying
    the sekisho extras, an optional usage chunk, then `data: [DONE]`.

    The text is released only after the Gateway has checked the whole output (an output guard
    cannot un-send a token), so streaming here shapes delivery, not latency to first token."""
    cid, created, model = result.id, result.created, result.model
    text = result.choices[0].message.content or ""
    yield _chunk(cid, created, model, {"role": "assistant", "content": ""}, None)
    for piece in _pieces(text):
        yield _chunk(cid, created, model, {"content": piece}, None)
    yield _chunk(cid, created, model, {}, result.choices[0].finish_reason,
                 {"sekisho": result.sekisho.model_dump()})
    if include_usage:
        usage = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                 "system_fingerprint": None, "choices": [], "usage": result.usage.model_dump()}
        yield f"data: {json.dumps(usage)}\n\n"
    yield "data: [DONE]\n\n"


def _pieces(text: str, size: int = 16) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    summary="Chat completion (OpenAI-compatible; stream=true gives text/event-stream)",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(body: ChatCompletionRequest, request: Request,
                           caller: Caller = require(Permission.CHAT)) -> Any:
    state = state_of(request)
    options = body.sekisho
    backend, rag = resolve_model(state, body.model, bool(options and options.rag))
    chat_request = to_chat_request(body)
    k = options.k if options else state.settings.retrieval.top_k
    governed = await state.runtime.run(governed_call, state, caller, backend, rag, k, chat_request)
    result = completion_from(governed, model=body.model, backend=backend, rag=rag)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(stream_completion(result, include_usage), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    return result


@router.get("/models", response_model=ModelList, summary="Configured backends and their retrieval variants")
async def list_models(request: Request, caller: Caller = require(Permission.CHAT)) -> ModelList:
    state = state_of(request)
    created = int(time.time())
    cards = []
    for name in _backend_names(state):
        cards.append(ModelCard(id=name, created=created, owned_by="sekisho"))
        cards.append(ModelCard(id=f"{RAG_PREFIX}{name}", created=created, owned_by="sekisho"))
    return ModelList(data=cards)


@router.post("/embeddings", response_model=EmbeddingList, summary="Embeddings from the knowledge base's embedder")
async def embeddings(body: EmbeddingRequest, request: Request,
                     caller: Caller = require(Permission.SEARCH)) -> EmbeddingList:
    state = state_of(request)
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts or len(texts) > 256:
        raise ApiError(400, "input: give 1 to 256 texts", code="invalid_request", param="input")
    if any(not t.strip() for t in texts):
        raise ApiError(400, "input: texts must not be empty", code="invalid_request", param="input")

    name = state.settings.retrieval.embedder
    if body.model not in (name, "default"):
        raise ApiError(404, f"embedding model '{body.model}' does not exist; this server embeds with '{name}'",
                       code="model_not_found", param="model")
    vectors = await state.runtime.run(lambda: state.runtime.kb().embedder.embed_passages(texts))
    items = []
    for i, row in enumerate(np.asarray(vectors, dtype=np.float32)):
        value: list[float] | str = (base64.b64encode(row.tobytes()).decode("ascii")
                                    if body.encoding_format == "base64" else row.tolist())
        items.append(EmbeddingItem(index=i, embedding=value))
    tokens = sum(len(t) for t in texts)  # characters: the honest unit without the model's tokenizer
    return EmbeddingList(data=items, model=name, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))

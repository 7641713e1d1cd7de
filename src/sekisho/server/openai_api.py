"""The OpenAI-compatible gateway: /v1/chat/completions (plain and SSE), /v1/models,
/v1/embeddings. The official `openai` SDK works against it unchanged. Every call goes through the
Gateway, so a client choosing this door gets the same guards, masking, routing, audit and review
holds as the web UI."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from sekisho.errors import SekishoError
from sekisho.models.protocol import ChatRequest, Message
from sekisho.request import check_text
from sekisho.server.deps import AppState, require, state_of
from sekisho.server.errors import ApiError, ErrorResponse
from sekisho.server.governed import blocked_error, rendered, sekisho_info
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
    SekishoOptions,
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
        raise ApiError(404, f"モデル '{model}' はありません / model '{model}' does not exist; GET /v1/models lists the models",
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
    """The request as the path takes it. Every text is checked here, at the door, whether or not
    it will be forwarded (a retrieval answer reads the last user message only)."""
    messages = []
    for m in body.messages:
        if m.role == "tool":
            raise ApiError(400, "tool messages are not supported", code="unsupported_content", param="messages")
        role = "system" if m.role == "developer" else m.role
        messages.append(Message(role=role, content=_text_of(m)))
    stop = [body.stop] if isinstance(body.stop, str) else body.stop
    check_text({**{f"messages[{i}]": m.content for i, m in enumerate(messages)},
                **{f"stop[{i}]": s for i, s in enumerate(stop or ())}})
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


async def governed_call(state: AppState, caller: Caller, backend: str, rag: bool, k: int, request: ChatRequest,
                        purpose: str | None, http: Request) -> Any:
    """The one place /v1 reaches the request path (a BackendError becomes a 502 in the app's error
    handlers)."""
    path = state.runtime.path()
    async with state.runtime.admitted(caller, http):
        if rag:
            kb = await state.runtime.run(state.runtime.kb)
            return await path.aask(last_user_text(request), principal=caller.principal, backend=backend, kb=kb, k=k,
                                   purpose=purpose or "answer")
        return await path.acomplete(request, backend=backend, principal=caller.principal, purpose=purpose or "chat")


def _finish_reason(governed: Any, completion: Any) -> str:
    if governed.status == "held":
        return "content_filter"
    reason = getattr(completion, "finish_reason", "stop") or "stop"
    return reason if reason in ("stop", "length") else "stop"


def completion_from(governed: Any, *, model: str, rag: bool) -> ChatCompletion:
    if governed.status == "blocked":
        raise blocked_error(governed)
    if rag:
        completion = governed.answer.completion if governed.answer is not None else None
        text = governed.answer.text if governed.answer is not None else None
    else:
        completion = governed.completion
        text = completion.text if completion is not None else None
    if governed.status == "held":
        text = governed.message
    prompt_tokens = getattr(completion, "prompt_tokens", 0) or 0
    completion_tokens = getattr(completion, "completion_tokens", 0) or 0
    return ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=model,
        choices=[Choice(message=AssistantMessage(content=text or ""), finish_reason=_finish_reason(governed, completion))],
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                    total_tokens=prompt_tokens + completion_tokens),
        sekisho=sekisho_info(governed, rag=rag),
    )


class _Sse:
    """OpenAI's exact chunk shapes for one streamed completion."""

    def __init__(self, model: str):
        self.id, self.created, self.model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), model

    def chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        payload: dict[str, Any] = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        payload.update(extra)
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    def usage(self, usage: Usage) -> str:
        payload = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                   "system_fingerprint": None, "choices": [], "usage": usage.model_dump()}
        return f"data: {json.dumps(payload)}\n\n"

    DONE = "data: [DONE]\n\n"


async def stream_governed(stream: Any, *, model: str, include_usage: bool, admission: Any) -> AsyncIterator[str]:
    """SSE: a role delta, content deltas sentence by sentence, a finish chunk carrying the sekisho
    extras, an optional usage chunk, then `data: [DONE]`. An output held mid-stream ends with the
    held notice and finish_reason "content_filter". A client that goes away cancels this
    generator, which closes the model's stream and records what was shown."""
    sse = _Sse(model)
    try:
        yield sse.chunk({"role": "assistant", "content": ""})
        try:
            async for piece in stream:
                yield sse.chunk({"content": piece})
        except SekishoError as exc:  # a failing model, an answer too long to check: recorded by the path
            yield sse.chunk({"content": f"\n[error: {exc}]"}, "stop")
            yield sse.DONE
            return
        governed = stream.result
        if governed.status == "held":
            yield sse.chunk({"content": governed.message})
        completion = governed.completion
        yield sse.chunk({}, _finish_reason(governed, completion), sekisho=sekisho_info(governed, rag=False).model_dump())
        if include_usage and completion is not None:
            yield sse.usage(Usage(prompt_tokens=completion.prompt_tokens,
                                  completion_tokens=completion.completion_tokens,
                                  total_tokens=completion.prompt_tokens + completion.completion_tokens))
        yield sse.DONE
    finally:
        await admission.__aexit__(None, None, None)


async def stream_finished(result: ChatCompletion, include_usage: bool) -> AsyncIterator[str]:
    """SSE for an answer that is complete before it is sent (retrieval answers: the faithfulness
    check and the review decision need the whole text), in pieces of a sentence."""
    sse = _Sse(result.model)
    yield sse.chunk({"role": "assistant", "content": ""})
    for piece in _SENTENCE.findall(result.choices[0].message.content or ""):
        yield sse.chunk({"content": piece})
    yield sse.chunk({}, result.choices[0].finish_reason, sekisho=result.sekisho.model_dump())
    if include_usage:
        yield sse.usage(result.usage)
    yield sse.DONE


_SENTENCE = re.compile(r"[^。！？!?\n]*(?:[。！？!?\n]+|$)")
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    summary="Chat completion (OpenAI-compatible; stream=true gives text/event-stream)",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(body: ChatCompletionRequest, request: Request,
                           caller: Caller = require(Permission.CHAT)) -> Any:
    """Every call passes the Gateway. Model `sekisho-rag/<backend>` (or `"sekisho": {"rag": true}`)
    answers from the knowledge base with [n] citations and `sekisho.sources`."""
    state = state_of(request)
    options = body.sekisho or SekishoOptions()
    backend, rag = resolve_model(state, body.model, options.rag)
    chat_request = to_chat_request(body)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    if body.stream and not rag:
        # The slot is held until the stream ends (or its client goes), not just until it starts.
        admission = state.runtime.admitted(caller, request)
        await admission.__aenter__()
        try:
            stream = state.runtime.path().astream(chat_request, backend=backend, principal=caller.principal,
                                                  purpose=options.purpose or "chat")
            if (blocked := await stream.start()) is not None:
                raise blocked_error(blocked)
        except BaseException:
            await admission.__aexit__(None, None, None)
            raise
        return StreamingResponse(stream_governed(stream, model=body.model, include_usage=include_usage,
                                                 admission=admission),
                                 media_type="text/event-stream", headers=_SSE_HEADERS)
    k = body.sekisho.k if body.sekisho else state.settings.retrieval.top_k
    governed = await governed_call(state, caller, backend, rag, k, chat_request, options.purpose, request)
    if body.stream:
        result = await state.runtime.run(completion_from, governed, model=body.model, rag=rag)
        return StreamingResponse(stream_finished(result, include_usage), media_type="text/event-stream",
                                 headers=_SSE_HEADERS)
    return await rendered(state.runtime, lambda: completion_from(governed, model=body.model, rag=rag))


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
    texts = [body.input] if isinstance(body.input, str) else list(body.input)  # 1 to 256, none blank (the schema)
    check_text({f"input[{i}]": text for i, text in enumerate(texts)})

    name = state.settings.retrieval.embedder_name  # the configured embedder: the store's once re-embedded
    if body.model not in (name, "default"):
        raise ApiError(404, f"埋め込みモデル '{body.model}' はありません / embedding model '{body.model}' does not exist; this server embeds with '{name}'",
                       code="model_not_found", param="model")
    def _embed() -> Any:
        # The configured embedder, as named (a store not yet re-embedded searches with another).
        vectors = state.runtime.kb().embedder_for(name).embed_passages(texts)
        # The embedder is local, so nothing leaves the premises; who embedded how much is still
        # recorded (not the texts, which may hold personal data).
        state.runtime.audit().append("embeddings", {"principal": caller.principal.name, "model": name,
                                                   "inputs": len(texts), "chars": sum(len(t) for t in texts)})
        return vectors

    vectors = await state.runtime.run(_embed)
    items = []
    for i, row in enumerate(np.asarray(vectors, dtype=np.float32)):
        value: list[float] | str = (base64.b64encode(row.tobytes()).decode("ascii")
                                    if body.encoding_format == "base64" else row.tolist())
        items.append(EmbeddingItem(index=i, embedding=value))
    tokens = sum(len(t) for t in texts)  # characters: the honest unit without the model's tokenizer
    return EmbeddingList(data=items, model=name, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))

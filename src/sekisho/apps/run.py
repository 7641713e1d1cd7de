"""Running an app: its form checked, its document read, its prompt rendered, and every model call
(and the proofreading rules) made through the governed request path, audited with the app's id
and version.

    prepared = prepare(spec, {"length": "短く"}, {"file": Upload("report.pdf", data)})
    async for event in run(path, spec, prepared, principal=alice, backend="extractive", kb=kb, settings=s):
        ...   # ("part", title) then ("delta", text)... for each part, then ("done", [Part, ...])
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sekisho.apps.spec import AppError, AppSpec
from sekisho.config import Settings
from sekisho.errors import InvalidInput
from sekisho.identity import Principal
from sekisho.ingest import chunk, extract
from sekisho.models import Capability, ChatRequest, Message, Passage
from sekisho.request import RequestPath

RULES = "sekisho-rules"  # the proofreading rules, answering like a model (RequestPath.add_tool)


class AppNeedsModel(InvalidInput):
    """The app writes text, and the backend chosen cannot (the extractive answerer)."""

    code = "needs_generative_model"


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


@dataclass
class Prepared:
    values: dict[str, str]
    document: str  # the text of the uploaded file, else of the first textarea
    title: str
    passages: list[Passage] = field(default_factory=list)  # the document, chunked
    max_tokens: int | None = None  # the caller's cap on the output, below the app's own


@dataclass
class Part:
    title: str
    text: str
    status: str
    backend: str
    audit_seq: int | None
    review_id: int | None
    message: str = ""
    sources: list[dict[str, Any]] = field(default_factory=list)
    energy: dict[str, Any] | None = None  # the model call's (models/energy.py), as audited

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


def prepare(spec: AppSpec, values: dict[str, str], uploads: dict[str, Upload], *,
            max_tokens: int | None = None) -> Prepared:
    """The app's inputs checked against its form (one line naming the input when not), and the
    uploaded document read (any format ingestion reads, in any supported encoding)."""
    known = {i.name for i in spec.inputs}
    for name in list(values) + list(uploads):
        if name not in known:
            raise AppError(f"{spec.id}: no input named {name!r} (inputs: {', '.join(sorted(known))})")
    checked: dict[str, str] = {}
    document, title = "", spec.title_ja
    for item in spec.inputs:
        if item.type == "file":
            upload = uploads.get(item.name)
            if upload is not None and upload.data:
                extracted = extract(upload.data, name=upload.name)
                document, title = document or extracted.text, extracted.title or upload.name
            continue
        value = values.get(item.name, item.default).strip()
        if item.type == "choice" and value not in item.choices:
            raise AppError(f"{spec.id}: {item.name}: choose one of {', '.join(item.choices)}")
        if len(value) > item.max_chars:
            raise AppError(f"{spec.id}: {item.name}: at most {item.max_chars:,} characters")
        checked[item.name] = value
        if item.type == "textarea" and not document:
            document = value
    missing = [i.name for i in spec.inputs if i.required and not (checked.get(i.name) or uploads.get(i.name))]
    if missing:
        raise AppError(f"{spec.id}: {missing[0]}: required")
    uses_document = "{document}" in spec.prompt or spec.kind in ("summary", "proofread")
    if uses_document and not document.strip():
        raise AppError(f"{spec.id}: give the text (paste it) or a file")
    chunks = chunk(document, doc_id="app") if document.strip() else []
    passages = [Passage(n, c.id, title, c.text, c.location.heading) for n, c in enumerate(chunks, 1)]
    if max_tokens is not None and max_tokens < 1:
        raise AppError(f"{spec.id}: max_tokens: at least 1")
    return Prepared(checked, document, title, passages, max_tokens)


def choose_backend(spec: AppSpec, requested: str | None, settings: Settings, path: RequestPath) -> str:
    """The backend the app runs on: the one asked for, else the configured default, else the first
    backend the app may use that can write when it must write."""
    names = list(settings.models.backends)
    if requested:
        if requested not in names:
            raise AppError(f"{spec.id}: backend {requested!r} is not configured (configured: {', '.join(names)})")
        if not spec.allows(requested):
            raise AppError(f"{spec.id}: may not use backend {requested!r} (allowed: {', '.join(spec.models)})")
        return requested
    allowed = [n for n in [settings.models.default, *names] if spec.allows(n)]
    if not allowed:
        raise AppError(f"{spec.id}: none of its models ({', '.join(spec.models)}) is configured")
    if spec.needs_generation:
        writing = [n for n in allowed if path.backend(n).info().can(Capability.GENERATE)]
        return writing[0] if writing else allowed[0]
    return allowed[0]


def needs_model_message(spec: AppSpec, backend: str) -> str:
    return (f"「{spec.title_ja}」には文章を生成するモデルが必要ですが、「{backend}」は資料を引用するだけです。"
            f"sekisho.toml に llama.cpp か OpenAI 互換のバックエンドを設定してください（README「Configuration」）。"
            f" / {spec.title_en} needs a generative model; {backend!r} only quotes documents: configure a llama.cpp or "
            f"OpenAI-compatible backend (README, Configuration).")


async def run(path: RequestPath, spec: AppSpec, prepared: Prepared, *, principal: Principal, backend: str, kb: Any,
              settings: Settings) -> AsyncIterator[tuple[str, Any]]:
    writes = path.backend(backend).info().can(Capability.GENERATE)
    if spec.needs_generation and not writes:
        raise AppNeedsModel(needs_model_message(spec, backend))
    meta = {"app": spec.id, "app_version": spec.version}
    parts: list[Part] = []
    values = dict(prepared.values, document=prepared.document)
    if spec.kind == "proofread":
        _add_rules(path, settings)
        request = ChatRequest(messages=[Message("user", prepared.document)], max_tokens=spec.max_tokens)
        yield "part", "規則による指摘 / Rule findings"
        async for event in _part(path, request, RULES, spec, principal, meta, "規則による指摘 / Rule findings", parts):
            yield event
        if not writes or parts[-1].status != "ok":
            yield "done", parts
            return
        values["findings"] = parts[-1].text
    sources: list[dict[str, Any]] = []
    passages = prepared.passages if spec.kind == "summary" else []
    if spec.retrieval != "none":
        query = prepared.document or next(iter(prepared.values.values()), "")
        tags = principal.tags if spec.retrieval == "all" else [t for t in spec.retrieval if _may(principal, t)]
        hits = kb.search(query[:2000], k=spec.k, tags=tags)
        values["passages"] = "\n\n".join(f"[{n}] {h.document.title}\n{h.chunk.text}" for n, h in enumerate(hits, 1))
        sources = [{"n": n, "chunk_id": h.chunk.id, "title": h.document.title, "location": h.chunk.location.label()}
                   for n, h in enumerate(hits, 1)]
    messages = ([Message("system", spec.system)] if spec.system else []) + [Message("user", spec.prompt.format(**values))]
    request = ChatRequest(messages=messages, max_tokens=_max_tokens(spec, prepared), passages=passages or None)
    title = "提案 / Suggestions" if spec.kind == "proofread" else spec.title_ja
    yield "part", title
    async for event in _part(path, request, backend, spec, principal, meta, title, parts, sources):
        yield event
    yield "done", parts


async def _part(path: RequestPath, request: ChatRequest, backend: str, spec: AppSpec, principal: Principal,
                meta: dict[str, Any], title: str, parts: list[Part],
                sources: list[dict[str, Any]] | None = None) -> AsyncIterator[tuple[str, Any]]:
    stream = path.astream(request, backend=backend, principal=principal, purpose=spec.purpose, meta=meta)
    async for piece in stream:
        yield "delta", piece
    governed = stream.result
    text = governed.completion.text if governed.status == "ok" and governed.completion else governed.message
    parts.append(Part(title, text, governed.status, governed.backend, governed.audit_seq, governed.review_id,
                      governed.message, sources or [], governed.energy.to_json() if governed.energy else None))


def _max_tokens(spec: AppSpec, prepared: Prepared) -> int:
    """An input named `length` scales the app's budget: its first choice halves it, its last doubles it."""
    budget = spec.max_tokens
    length = next((i for i in spec.inputs if i.name == "length" and i.type == "choice"), None)
    if length is not None:
        position = length.choices.index(prepared.values.get("length", length.default or length.choices[0]))
        budget = int(budget * (0.5 if position == 0 else 2.0 if position == len(length.choices) - 1 else 1.0))
    return min(budget, prepared.max_tokens) if prepared.max_tokens else budget


def _may(principal: Principal, tag: str) -> bool:
    return "*" in principal.tags or tag in principal.tags


def _add_rules(path: RequestPath, settings: Settings) -> None:
    from sekisho.proofread import apply_fixes, configured_dictionary, proofread

    dictionary = configured_dictionary(settings)

    def rules(request: ChatRequest) -> str:
        text = request.messages[-1].content
        findings = proofread(text, dictionary=dictionary)
        if not findings:
            return "規則による指摘はありません。/ No findings."
        lines = [f"{n}. 「{f.text}」→「{f.suggestion}」 {f.family_label}（{f.source}）"
                 if f.suggestion is not None else f"{n}. 「{f.text}」 {f.message}（{f.source}）"
                 for n, f in enumerate(findings, 1)]
        return "\n".join(lines) + "\n\n**修正後の文章 / Corrected text**\n\n" + apply_fixes(text, findings)

    path.add_tool(RULES, rules)

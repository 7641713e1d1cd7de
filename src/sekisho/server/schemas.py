"""Request and response models, so that /openapi.json describes what the server really accepts and
returns. The /v1 models follow OpenAI's chat-completions API field for field; the `sekisho` field
on requests and responses carries what OpenAI has no place for (retrieval switch, governance
status, sources)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sekisho.config import QuotaLimits

# --- OpenAI-compatible ----------------------------------------------------------------------


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_call_id ... accepted and ignored
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None


class SekishoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rag: bool = False  # answer from the knowledge base with citations
    k: int = Field(default=5, ge=1, le=50)  # passages to retrieve
    purpose: str | None = Field(default=None, max_length=50)  # e.g. "external": outputs for outside use wait for review


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown OpenAI parameters are accepted and ignored
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=500)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=32768)
    temperature: float | None = Field(default=None, ge=0, le=2)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    user: str | None = None
    sekisho: SekishoOptions | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length", "content_filter"]
    logprobs: None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class FindingOut(BaseModel):
    """What the guard found and did, without the found text: responses never echo personal data."""

    entity: str  # e.g. MY_NUMBER
    label: str  # e.g. マイナンバー
    where: str  # "message[1]", "passage[3]", "question", "output"
    action: str  # allow | mask | block | route_local | review | flag
    start: int
    end: int
    placeholder: str | None = None  # e.g. <マイナンバー_1>


class SourceOut(BaseModel):
    n: int  # [n] in the answer text
    chunk_id: str
    document_id: str
    title: str
    location: str
    text: str


class SentenceOut(BaseModel):
    text: str
    cited: list[int]
    support: float
    supported: bool
    missing: list[str]


class FaithfulnessOut(BaseModel):
    score: float  # length-weighted share of supported content, 0..1
    faithful: bool
    invalid_citations: list[int]
    sentences: list[SentenceOut]


class EnergyOut(BaseModel):
    """The energy of the model call behind an answer (models/energy.py says what is attributed)."""

    joules: float | None  # null: not measurable here (a remote server)
    source: Literal["rapl", "estimate", "remote"]
    label: str  # what the figure is, Japanese first


class SekishoInfo(BaseModel):
    status: Literal["ok", "held", "blocked"]
    message: str = ""  # what to tell the user when not ok (Japanese first)
    backend: str  # the backend actually used, after any routing to a local model
    requested_backend: str = ""
    audit_seq: int | None = None
    review_id: int | None = None
    findings: list[FindingOut] = []
    sources: list[SourceOut] = []
    faithfulness: FaithfulnessOut | None = None
    not_found: bool | None = None
    energy: EnergyOut | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None
    sekisho: SekishoInfo


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# A text to embed holds something other than white space.
EmbeddingText = Annotated[str, Field(min_length=1, pattern=r"\S")]


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=200)
    input: EmbeddingText | Annotated[list[EmbeddingText], Field(min_length=1, max_length=256)]
    encoding_format: Literal["float", "base64"] = "float"


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingUsage


# --- native API -----------------------------------------------------------------------------


class DocumentOut(BaseModel):
    id: str
    path: str
    title: str
    media_type: str
    encoding: str | None
    tags: list[str]
    chars: int
    content_hash: str
    ingested_at: float


class DocumentList(BaseModel):
    documents: list[DocumentOut]


class FileResultOut(BaseModel):
    name: str
    status: Literal["queued", "running", "done", "failed"]
    document_id: str | None = None
    chunks: int | None = None
    error: str | None = None


class JobOut(BaseModel):
    id: str
    owner: str  # the principal who uploaded
    status: Literal["queued", "running", "done", "failed"]
    total: int
    done: int
    progress: float  # 0..1
    files: list[FileResultOut]
    created_at: float
    finished_at: float | None = None


class Deleted(BaseModel):
    id: str
    deleted: bool = True


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=5, ge=1, le=50)
    mode: Literal["hybrid", "lexical", "dense"] = "hybrid"


class HitOut(BaseModel):
    rank: int
    score: float
    chunk_id: str
    document_id: str
    title: str
    location: str
    text: str
    matched_terms: list[str]


class SearchResponse(BaseModel):
    query: str
    hits: list[HitOut]


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    backend: str | None = Field(default=None, max_length=200)
    k: int = Field(default=5, ge=1, le=50)


class AskResponse(BaseModel):
    question: str
    status: Literal["ok", "held", "blocked"]
    answer: str  # with [n] citations when ok; the held notice when held
    not_found: bool
    citations: list[SourceOut]  # the numbered passages [1]..[k]
    faithfulness: FaithfulnessOut | None
    findings: list[FindingOut]
    backend: str
    audit_seq: int | None
    review_id: int | None
    energy: EnergyOut | None = None


class ReleaseOut(BaseModel):
    review_id: int
    text: str  # the approved (or edited) output, personal data restored for the requester
    audit_seq: int


class PassageOut(BaseModel):
    chunk_id: str
    document_id: str
    title: str
    location: str
    text: str
    document_text: str | None = None  # the surrounding document, for context


class ReviewItemOut(BaseModel):
    id: int
    status: Literal["pending", "approved", "edited", "rejected"]
    created: str
    requester: str
    audit_seq: int
    reasons: list[str]
    output: str  # as audited: personal data appears as placeholders
    final_text: str | None = None
    reviewer: str | None = None
    note: str | None = None
    decided: str | None = None


class ReviewList(BaseModel):
    items: list[ReviewItemOut]


class ReviewEdit(BaseModel):
    text: str = Field(min_length=1, max_length=100_000)
    note: str | None = Field(default=None, max_length=2000)


class ReviewNote(BaseModel):
    note: str | None = Field(default=None, max_length=2000)


class ReviewReject(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    seq: int
    kind: str
    ts: str | None = None  # ISO 8601 UTC
    hash: str | None = None
    record: dict[str, Any]
    # Content fields replaced by {"withheld", "sha256"}: the key may not read the documents the
    # record drew on (server/access.py).
    withheld: list[str] = []


class AuditList(BaseModel):
    entries: list[AuditEntryOut]


class VerifyOut(BaseModel):
    ok: bool
    first_bad_seq: int | None = None
    reason: str | None = None
    checked: int
    head_seq: int


class KeyCreate(BaseModel):
    role: Literal["admin", "reviewer", "user", "auditor"]
    name: str = Field(default="", max_length=100)
    # Tags are stored tab-separated (server/keys.py): no tab or line break inside one.
    tags: list[Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\t\n]*$")]] = Field(default=[], max_length=50)
    limits: QuotaLimits = QuotaLimits()  # the key's own quotas; the tightest of key, user and role wins


class KeyOut(BaseModel):
    id: str
    name: str
    role: str
    tags: list[str]
    created_at: float
    revoked_at: float | None = None
    last_used_at: float | None = None
    limits: QuotaLimits = QuotaLimits()


class KeyCreated(KeyOut):
    secret: str  # shown once


class KeyList(BaseModel):
    keys: list[KeyOut]


class QuotaOut(BaseModel):
    name: Literal["requests_per_minute", "tokens_per_day", "tokens_per_month"]
    label: str  # Japanese first
    used: int  # in the current minute, day or month
    limit: int | None  # null: unlimited
    remaining: int | None
    scope: Literal["key", "user", "role"] | None  # where the limit that applies comes from
    resets_at: str  # ISO 8601, in the organisation's time zone


class UsageOut(BaseModel):
    principal: str
    role: str
    key_id: str | None
    quotas: list[QuotaOut]
    requests_today: int
    requests_this_month: int


class UsageList(BaseModel):
    timezone: str  # days and months begin at midnight here
    principals: list[UsageOut]


class WhoAmI(BaseModel):
    key_id: str | None  # None: a person signed in through the organisation's IdP
    principal: str  # the name the audit log records
    name: str
    role: str
    tags: list[str]
    permissions: list[str]

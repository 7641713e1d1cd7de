"""The native API under /api: documents (upload with background ingest, list, delete), search,
ask with citations and faithfulness flags, passages for citations, the review queue, the audit
log, provenance, and key management."""

from __future__ import annotations

import hashlib
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response

from sekisho.errors import Forbidden
from sekisho.identity import Role
from sekisho.ingest import upload_name
from sekisho.ingest.jobs import Job
from sekisho.server.access import ContentAccess
from sekisho.server.deps import AppState, audit_event, require, state_of
from sekisho.server.errors import ApiError, ErrorResponse
from sekisho.server.governed import blocked_error, rendered, sekisho_info
from sekisho.server.keys import ApiKey
from sekisho.server.schemas import (
    AskRequest,
    AskResponse,
    AuditEntryOut,
    AuditList,
    Deleted,
    DocumentList,
    DocumentOut,
    FileResultOut,
    HitOut,
    JobOut,
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyOut,
    PassageOut,
    ReleaseOut,
    ReviewEdit,
    ReviewItemOut,
    ReviewList,
    ReviewNote,
    ReviewReject,
    SearchRequest,
    SearchResponse,
    VerifyOut,
    WhoAmI,
)
from sekisho.server.security import GRANTS, Caller, Permission, can_see, search_tags
from sekisho.server.uploads import check_content

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 429)}
router = APIRouter(prefix="/api", responses=_ERRORS)

MAX_FILES_PER_UPLOAD = 20
SQLITE_MAX_INT = 2**63 - 1
ReviewId = Annotated[int, Path(ge=1, le=SQLITE_MAX_INT, description="review number")]


# --- identity -------------------------------------------------------------------------------

@router.get("/me", response_model=WhoAmI, tags=["identity"])
async def whoami(caller: Caller = require(None)) -> WhoAmI:
    """Who this key is and what it may do: every role may ask (an auditor too)."""
    return _whoami(caller)


def _whoami(caller: Caller) -> WhoAmI:
    role = caller.principal.role
    name = caller.key.name if caller.key else caller.display or caller.principal.name
    return WhoAmI(key_id=caller.key.id if caller.key else None, principal=caller.principal.name, name=name,
                  role=role.value, tags=list(caller.principal.tags), permissions=sorted(p.value for p in GRANTS[role]))


# --- documents ------------------------------------------------------------------------------

def document_out(doc: Any) -> DocumentOut:
    return DocumentOut(id=doc.id, path=doc.path, title=doc.title, media_type=doc.media_type, encoding=doc.encoding,
                       tags=list(doc.tags), chars=len(doc.text), content_hash=doc.content_hash,
                       ingested_at=doc.ingested_at)


def job_out(job: Job) -> JobOut:
    total = len(job.files)
    return JobOut(id=job.id, owner=job.owner, status=job.status, total=total, done=job.done,
                  progress=(job.done / total) if total else 1.0,
                  files=[FileResultOut(name=f.name, status=f.status, document_id=f.document_id, chunks=f.chunks,
                                       error=f.error) for f in job.files],
                  created_at=job.created_at, finished_at=job.finished_at)


def _split_tags(raw: str | None) -> tuple[str, ...]:
    return tuple(t.strip() for t in (raw or "").replace("、", ",").split(",") if t.strip())


@router.post("/documents", response_model=JobOut, status_code=202, tags=["documents"],
             responses={413: {"model": ErrorResponse}, 415: {"model": ErrorResponse}})
async def upload_documents(request: Request, files: list[UploadFile] = File(..., description="文書ファイル",
                                                                           min_length=1, max_length=MAX_FILES_PER_UPLOAD),
                           tags: str | None = Form(None, description="アクセスタグ (comma-separated)"),
                           caller: Caller = require(Permission.DOCUMENTS)) -> JobOut:
    """Upload documents; ingestion runs in the background. Poll GET /api/jobs/{id} for progress."""
    state = state_of(request)
    job = await accept_uploads(state, files, tags, caller.principal.name)
    return job_out(job)


async def accept_uploads(state: AppState, files: list[UploadFile], tags: str | None, owner: str) -> Job:
    """Check every file before queueing any (a batch with a bad file is refused whole, so the
    user never wonders which half landed), then record the job durably and wake the ingester:
    once this returns, the upload survives a crash."""
    if not files:
        raise ApiError(400, "files: upload at least one file", code="invalid_request", param="files")
    if len(files) > MAX_FILES_PER_UPLOAD:
        raise ApiError(400, f"files: at most {MAX_FILES_PER_UPLOAD} files per upload", code="invalid_request")
    limit = state.settings.server.max_upload_mb * 1024 * 1024
    names, payloads = [], []
    for upload in files:
        name = upload_name(upload.filename)
        data = await upload.read()
        if len(data) > limit:
            raise ApiError(413, f"{name}: ファイルが大きすぎます / larger than the upload limit of {state.settings.server.max_upload_mb} MB",
                           code="too_large")
        check_content(name, data)
        names.append(name)
        payloads.append(data)
    job = await state.runtime.run(lambda: state.runtime.jobs().submit(owner, list(zip(names, payloads)),
                                                                       _split_tags(tags)))
    state.runtime.ingest.wake()
    return job


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["documents"])
async def get_job(job_id: str, request: Request, caller: Caller = require(Permission.DOCUMENTS)) -> JobOut:
    state = state_of(request)
    job = await state.runtime.run(lambda: state.runtime.jobs().get(job_id))
    if job is None:
        raise ApiError(404, f"job {job_id}: no such job", code="not_found")
    return job_out(job)


@router.get("/documents", response_model=DocumentList, tags=["documents"])
async def list_documents(request: Request, caller: Caller = require(Permission.SEARCH)) -> DocumentList:
    """The documents this key may see (admins: all)."""
    state = state_of(request)
    docs = await state.runtime.run(lambda: state.runtime.kb().store.documents())
    return DocumentList(documents=[document_out(d) for d in docs if can_see(caller.principal, d.tags)])


@router.delete("/documents/{doc_id}", response_model=Deleted, tags=["documents"])
async def delete_document(doc_id: str, request: Request, caller: Caller = require(Permission.DOCUMENTS)) -> Deleted:
    state = state_of(request)

    def _delete() -> bool:
        kb = state.runtime.kb()
        if not any(d.id == doc_id for d in kb.store.documents()):
            return False
        kb.delete(doc_id)
        state.runtime.audit().append("document.delete", {"principal": caller.principal.name, "document_id": doc_id})
        return True

    if not await state.runtime.run(_delete):
        raise ApiError(404, f"document {doc_id}: no such document", code="not_found")
    return Deleted(id=doc_id)


# --- search, ask, passages ------------------------------------------------------------------

@router.post("/search", response_model=SearchResponse, tags=["knowledge base"])
async def search(body: SearchRequest, request: Request, caller: Caller = require(Permission.SEARCH)) -> SearchResponse:
    state = state_of(request)

    def _search() -> list[Any]:
        hits = state.runtime.kb().search(body.query, k=body.k, tags=search_tags(caller.principal), mode=body.mode,
                                          min_score=state.settings.retrieval.min_score)
        # Who retrieved which passages, without keeping the query (it may hold personal data).
        state.runtime.audit().append("search", {
            "principal": caller.principal.name, "query_sha256": hashlib.sha256(body.query.encode()).hexdigest(),
            "mode": body.mode, "k": body.k, "chunk_ids": [h.chunk.id for h in hits]})
        return hits

    hits = await state.runtime.run(_search)
    return SearchResponse(query=body.query, hits=[
        HitOut(rank=h.rank, score=h.score, chunk_id=h.chunk.id, document_id=h.document.id, title=h.document.title,
               location=h.chunk.location.label(), text=h.chunk.text, matched_terms=list(h.matched_terms))
        for h in hits])


async def ask_governed(state: AppState, caller: Caller, request: Request, question: str, backend: str, k: int) -> Any:
    """Retrieval, answer and every guard, through the request path (a BackendError becomes a 502
    in the app's error handlers)."""
    async with state.runtime.admitted(caller, request):
        kb = await state.runtime.run(state.runtime.kb)
        return await state.runtime.path().aask(question, principal=caller.principal, backend=backend, kb=kb, k=k)


def ask_response(question: str, governed: Any) -> AskResponse:
    if governed.status == "blocked":
        raise blocked_error(governed)
    info = sekisho_info(governed, rag=True)
    ok = governed.status == "ok"
    return AskResponse(
        question=question, status=governed.status, answer=governed.answer.text if ok else governed.message,
        not_found=bool(info.not_found), citations=info.sources, faithfulness=info.faithfulness,
        findings=info.findings, backend=info.backend, audit_seq=info.audit_seq, review_id=info.review_id,
        energy=info.energy)


@router.post("/ask", response_model=AskResponse, tags=["knowledge base"])
async def ask(body: AskRequest, request: Request, caller: Caller = require(Permission.CHAT)) -> Response:
    """A grounded answer with numbered citations [n] and per-sentence faithfulness flags. A held
    answer says so (status "held", review_id); fetch it after approval from /api/reviews/{id}/release."""
    state = state_of(request)
    from sekisho.server.openai_api import resolve_model

    backend, _ = resolve_model(state, body.backend or state.settings.models.default, True)
    governed = await ask_governed(state, caller, request, body.question, backend, body.k)
    return await rendered(state.runtime, lambda: ask_response(body.question, governed))


@router.get("/passages/{chunk_id}", response_model=PassageOut, tags=["knowledge base"])
async def passage(chunk_id: str, request: Request, caller: Caller = require(Permission.SEARCH)) -> PassageOut:
    """The cited passage and its whole document, when this key may see that document. Reading
    documents is searching the corpus: a reviewer or an auditor may not, whatever the id."""
    state = state_of(request)

    def _load() -> PassageOut | None:
        store = state.runtime.kb().store
        chunks = store.chunks_by_id([chunk_id])
        if not chunks:
            return None
        chunk = chunks[0]
        doc = next((d for d in store.documents() if d.id == chunk.doc_id), None)
        if doc is None or not can_see(caller.principal, doc.tags):
            return None  # indistinguishable from absent: no probing for hidden documents
        return PassageOut(chunk_id=chunk.id, document_id=doc.id, title=doc.title, location=chunk.location.label(),
                          text=chunk.text, document_text=doc.text)

    found = await state.runtime.run(_load)
    if found is None:
        raise ApiError(404, f"passage {chunk_id}: not found", code="not_found")
    return found


# --- review queue ---------------------------------------------------------------------------

def review_out(item: Any) -> ReviewItemOut:
    return ReviewItemOut(id=item.id, status=str(item.status), created=item.created, requester=item.requester,
                         audit_seq=item.audit_seq, reasons=list(item.reasons), output=item.output,
                         final_text=item.final_text, reviewer=item.reviewer, note=item.note, decided=item.decided)


async def review_failure(state: AppState, caller: Caller, review_id: int, exc: Exception) -> Exception:
    """A refused review step, to re-raise; a refusal on permission (four eyes, someone else's
    answer) is audited like every other denial."""
    from sekisho.audit.review import ReviewPermissionError

    if isinstance(exc, ReviewPermissionError):
        await audit_event(state, "access.denied", {"status": 403, "reason": str(exc), "principal": caller.principal.name,
                                                   "review_id": review_id})
    return exc


def content_access(state: AppState) -> ContentAccess:
    """Who may read which content, over this server's audit log and knowledge base (blocking)."""
    store = state.runtime.kb().store

    def document_tags(doc_id: str) -> tuple[str, ...] | None:
        document = store.document_by_id(doc_id)
        return None if document is None else tuple(document.tags)

    return ContentAccess(state.runtime.audit(), document_tags)


def _visible_review(state: AppState, caller: Caller, review_id: int) -> Any:
    """The review, if the caller may read what it holds; otherwise as absent as a review that
    does not exist (no probing for held answers one may not see)."""
    from sekisho.audit.review import ReviewNotFound

    item = state.runtime.reviews().get(review_id)
    if not content_access(state).may_read_review(caller.principal, item):
        raise ReviewNotFound(f"review {review_id} does not exist")
    return item


# Reviews read per listing to find `limit` the caller may see.
_REVIEWS_SCANNED = 10_000


@router.get("/reviews", response_model=ReviewList, tags=["review"])
async def list_reviews(request: Request,
                       status: Literal["pending", "approved", "edited", "rejected", "all"] = Query("pending"),
                       limit: int = Query(100, ge=1, le=1000),
                       caller: Caller = require(Permission.REVIEW)) -> ReviewList:
    """Held outputs, those drawn from documents this key may see."""
    state = state_of(request)
    wanted = None if status == "all" else status

    def _list() -> list[Any]:
        access = content_access(state)
        items = state.runtime.reviews().list(wanted, limit=_REVIEWS_SCANNED)
        return [i for i in items if access.may_read_review(caller.principal, i)][:limit]

    return ReviewList(items=[review_out(i) for i in await state.runtime.run(_list)])


async def decide(state: AppState, caller: Caller, review_id: int, action: str, text: str | None = None,
                 note: str = "") -> ReviewItemOut:
    """Approve, edit or reject on the serve thread; the queue audits the decision itself."""
    from sekisho.audit.review import ReviewError

    def _decide() -> Any:
        queue = state.runtime.reviews()
        _visible_review(state, caller, review_id)  # nobody decides what they may not read
        if action == "approve":
            return queue.approve(review_id, caller.principal, note=note)
        if action == "edit":
            return queue.edit(review_id, caller.principal, text or "", note)
        return queue.reject(review_id, caller.principal, note)

    try:
        return review_out(await state.runtime.run(_decide))
    except ReviewError as exc:
        raise await review_failure(state, caller, review_id, exc) from None


@router.get("/reviews/{review_id}", response_model=ReviewItemOut, tags=["review"])
async def get_review(review_id: ReviewId, request: Request, caller: Caller = require(Permission.REVIEW)) -> ReviewItemOut:
    from sekisho.audit.review import ReviewError

    state = state_of(request)
    try:
        return review_out(await state.runtime.run(_visible_review, state, caller, review_id))
    except ReviewError as exc:
        raise await review_failure(state, caller, review_id, exc) from None


@router.post("/reviews/{review_id}/approve", response_model=ReviewItemOut, tags=["review"],
             responses={409: {"model": ErrorResponse}})
async def approve_review(review_id: ReviewId, request: Request, body: ReviewNote | None = None,
                         caller: Caller = require(Permission.REVIEW)) -> ReviewItemOut:
    return await decide(state_of(request), caller, review_id, "approve", note=(body.note if body else None) or "")


@router.post("/reviews/{review_id}/edit", response_model=ReviewItemOut, tags=["review"],
             responses={409: {"model": ErrorResponse}})
async def edit_review(review_id: ReviewId, body: ReviewEdit, request: Request,
                      caller: Caller = require(Permission.REVIEW)) -> ReviewItemOut:
    return await decide(state_of(request), caller, review_id, "edit", text=body.text, note=body.note or "")


@router.post("/reviews/{review_id}/reject", response_model=ReviewItemOut, tags=["review"],
             responses={409: {"model": ErrorResponse}})
async def reject_review(review_id: ReviewId, body: ReviewReject, request: Request,
                        caller: Caller = require(Permission.REVIEW)) -> ReviewItemOut:
    """Rejecting needs a reason the requester can read."""
    return await decide(state_of(request), caller, review_id, "reject", note=body.reason)


@router.post("/reviews/{review_id}/release", response_model=ReleaseOut, tags=["review"],
             responses={409: {"model": ErrorResponse}})
async def release_review(review_id: ReviewId, request: Request, caller: Caller = require(Permission.CHAT)) -> ReleaseOut:
    """The approved output of a held answer, for the key that asked (and nobody else)."""
    from sekisho.audit.review import ReviewError

    state = state_of(request)
    try:
        released = await state.runtime.run(lambda: state.runtime.path().release(review_id, caller.principal))
    except ReviewError as exc:
        raise await review_failure(state, caller, review_id, exc) from None
    return ReleaseOut(review_id=review_id, text=released.completion.text, audit_seq=released.audit_seq)


# --- audit and provenance -------------------------------------------------------------------

def audit_out(entry: Any, access: ContentAccess, principal: Any) -> AuditEntryOut:
    record, withheld = access.shown(principal, entry.record or {})
    return AuditEntryOut(seq=entry.seq, kind=entry.kind, ts=entry.ts or None, hash=entry.hash, record=record,
                         withheld=withheld)


def export_line(entry: Any, access: ContentAccess, principal: Any) -> dict[str, Any]:
    """An export line as `principal` may read it; one with content withheld names the fields
    (its record hash then cannot be recomputed from the line: verify_export checks its place)."""
    record, withheld = access.shown(principal, entry.record or {})
    line = {**entry.to_json(), "record": record}
    if withheld:
        line["withheld"] = withheld
    return line


_CUTOFF = "ISO 8601 (2026-04-01T09:00:00Z, 2026-04-01); Japanese dates too (令和8年4月1日)"


@router.get("/audit", response_model=AuditList, tags=["audit"])
async def query_audit(request: Request, kind: str | None = Query(None, max_length=100),
                      principal: str | None = Query(None, max_length=200),
                      since: str | None = Query(None, max_length=40, description=_CUTOFF,
                                                json_schema_extra={"format": "date-time"}),
                      until: str | None = Query(None, max_length=40, description=_CUTOFF,
                                                json_schema_extra={"format": "date-time"}),
                      limit: int = Query(100, ge=1, le=1000),
                      caller: Caller = require(Permission.AUDIT)) -> AuditList:
    state = state_of(request)

    def _query() -> list[AuditEntryOut]:
        access = content_access(state)
        entries = state.runtime.audit().query(kind=kind, principal=principal, since=since, until=until, limit=limit)
        return [audit_out(e, access, caller.principal) for e in entries]

    return AuditList(entries=await state.runtime.run(_query))


@router.post("/audit/verify", response_model=VerifyOut, tags=["audit"])
async def verify_audit(request: Request, caller: Caller = require(Permission.AUDIT)) -> VerifyOut:
    state = state_of(request)
    result = await state.runtime.run(lambda: state.runtime.audit().verify())
    await audit_event(state, "audit.verify", {"principal": caller.principal.name, "ok": result.ok,
                                              "first_bad_seq": result.first_bad_seq})
    return VerifyOut(ok=result.ok, first_bad_seq=result.first_bad_seq, reason=result.reason or None,
                     checked=result.checked, head_seq=result.head_seq)


@router.get("/audit/export", response_class=PlainTextResponse, tags=["audit"],
            responses={200: {"content": {"application/x-ndjson": {}}}})
async def export_audit(request: Request, since_seq: int = Query(0, ge=0, le=SQLITE_MAX_INT),
                       caller: Caller = require(Permission.AUDIT)) -> PlainTextResponse:
    """The log as JSON lines, oldest first, re-verifiable elsewhere. Content drawn from documents
    this key may not see is withheld (its sha256 kept); such lines are checked for their place in
    the chain only."""
    state = state_of(request)

    def _export() -> str:
        buffer = io.StringIO()
        access = content_access(state)
        state.runtime.audit().export(buffer, since_seq=since_seq,
                                     shown=lambda entry: export_line(entry, access, caller.principal))
        return buffer.getvalue()

    body = await state.runtime.run(_export)
    await audit_event(state, "audit.export", {"principal": caller.principal.name, "since_seq": since_seq})
    return PlainTextResponse(body, media_type="application/x-ndjson",
                             headers={"Content-Disposition": 'attachment; filename="sekisho-audit.jsonl"'})


@router.get("/provenance/{seq}", tags=["audit"], response_class=Response,
            responses={200: {"content": {"application/json": {}}, "description": "signed provenance bundle"},
                       409: {"model": ErrorResponse}})
async def export_provenance(request: Request, seq: Annotated[int, Path(ge=1, le=SQLITE_MAX_INT)],
                            caller: Caller = require(Permission.AUDIT)) -> Response:
    """The signed provenance bundle (C2PA-style manifest + Ed25519 signature) for the generated
    output of audit record `seq`, in canonical JSON, verifiable offline with `verify_manifest`."""
    from sekisho.audit.provenance import build_bundle
    from sekisho.audit.signing import canonical_json

    state = state_of(request)

    def _bundle() -> bytes:
        entry = state.runtime.audit().get(seq)
        if entry is not None and not content_access(state).may_read(caller.principal, entry.record or {}):
            raise Forbidden(f"audit record {seq}: its output draws on documents whose access tags this key does not "
                            "hold (閲覧タグがありません)")
        return canonical_json(build_bundle(state.runtime.audit(), seq, exported_by=caller.principal.name))

    body = await state.runtime.run(_bundle)
    return Response(body, media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="sekisho-provenance-{seq}.json"'})


# --- keys -----------------------------------------------------------------------------------

def key_out(key: ApiKey) -> KeyOut:
    return KeyOut(id=key.id, name=key.name, role=key.role.value, tags=list(key.tags), created_at=key.created_at,
                  revoked_at=key.revoked_at, last_used_at=key.last_used_at, limits=key.limits)


@router.get("/keys", response_model=KeyList, tags=["identity"])
async def list_keys(request: Request, caller: Caller = require(Permission.KEYS)) -> KeyList:
    return KeyList(keys=[key_out(k) for k in state_of(request).keys.list()])


@router.post("/keys", response_model=KeyCreated, status_code=201, tags=["identity"])
async def create_key(body: KeyCreate, request: Request, caller: Caller = require(Permission.KEYS)) -> KeyCreated:
    """A new key; the secret is in this response only."""
    state = state_of(request)
    key, secret = state.keys.create(Role(body.role), body.name, tuple(body.tags), body.limits)
    await audit_event(state, "key.create", {"principal": caller.principal.name, "key_id": key.id,
                                            "role": key.role.value, "tags": list(key.tags),
                                            "limits": key.limits.model_dump(exclude_none=True)})
    return KeyCreated(secret=secret, **key_out(key).model_dump())


@router.delete("/keys/{key_id}", response_model=KeyOut, tags=["identity"])
async def revoke_key(key_id: str, request: Request, caller: Caller = require(Permission.KEYS)) -> KeyOut:
    state = state_of(request)
    key = state.keys.revoke(key_id)
    await audit_event(state, "key.revoke", {"principal": caller.principal.name, "key_id": key_id})
    return key_out(key)

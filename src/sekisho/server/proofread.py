"""公用文校正 over HTTP: `POST /api/proofread` (JSON with a text or an ingested document's id, or
a multipart upload) and the `/proofread` page, which marks findings in the text and lets the
user accept or ignore each one (static/proofread.js, in the browser).

Proofreading sends nothing to any model, so it does not pass the Gateway; each request still
leaves one audit record: who, how many characters, and how many findings of each rule, never
the text.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUpload

from sekisho.ingest import upload_name
from sekisho.proofread import Finding, ProofreadError, configured_dictionary, proofread, read_document
from sekisho.server.deps import AppState, audit_event, require, state_of
from sekisho.server.errors import ApiError, ErrorResponse
from sekisho.server.security import Caller, Permission, can_see, may
from sekisho.server.ui import PageRoute, _me, page, render

router = APIRouter()
ui_router = APIRouter(include_in_schema=False, route_class=PageRoute)
MAX_CHARS = 1_000_000


class ProofreadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(None, max_length=MAX_CHARS, description="校正する文章 / the text")
    document_id: str | None = Field(None, max_length=200, description="取り込み済み文書のID / an ingested document")


class FindingOut(BaseModel):
    rule: str = Field(description="e.g. formal-noun:時")
    family: str
    family_label: str = Field(description="形式名詞 / formal noun")
    start: int = Field(description="character offset into the text")
    end: int
    text: str
    suggestion: str | None
    message: str
    source: str = Field(description="guideline and section")


class ProofreadResponse(BaseModel):
    chars: int
    counts: dict[str, int] = Field(description="findings per family")
    findings: list[FindingOut]
    name: str | None = Field(None, description="the file or document proofread")
    text: str | None = Field(None, description="the text the offsets index (files and documents only)")


_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": ProofreadRequest.model_json_schema()},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": ".txt .md .html .pdf .docx"}}}},
}}}


async def _findings(state: AppState, caller: Caller, text: str, source: str) -> list[Finding]:
    try:
        dictionary = configured_dictionary(state.settings)
    except ProofreadError as exc:
        raise ApiError(503, str(exc), code="service_unavailable") from None
    findings = await run_in_threadpool(proofread, text, dictionary=dictionary)
    await audit_event(state, "proofread", {
        "principal": caller.principal.name, "source": source, "chars": len(text), "total": len(findings),
        "rules": dict(Counter(f.rule for f in findings)),
    })
    return findings


def _document(data: bytes, filename: str | None) -> tuple[str, str]:
    name = upload_name(filename)
    try:
        return name, read_document(data, name=name).text
    except ProofreadError as exc:
        raise ApiError(400, str(exc), code="unreadable_file", param="file") from None


async def _stored(state: AppState, caller: Caller, document_id: str) -> tuple[str, str]:
    # The response carries the document's text: reading stored documents is the search
    # permission's, as at /api/passages (a reviewer proofreads what it pastes, not the corpus).
    if not may(caller.principal, Permission.SEARCH):
        raise ApiError(403, f"role '{caller.principal.role.value}' may not read stored documents; paste the text "
                            "instead (権限がありません)", code="forbidden", param="document_id")
    doc = await state.runtime.run(lambda: state.runtime.kb().store.document_by_id(document_id))
    if doc is None or not can_see(caller.principal, doc.tags):
        raise ApiError(404, f"document {document_id}: no such document", code="not_found", param="document_id")
    return doc.title or doc.path, doc.text


def _response(findings: list[Finding], text: str, name: str | None, echo: bool) -> ProofreadResponse:
    return ProofreadResponse(chars=len(text), counts=dict(Counter(f.family for f in findings)),
                             findings=[FindingOut(**f.to_json()) for f in findings], name=name,
                             text=text if echo else None)


@router.post("/api/proofread", response_model=ProofreadResponse, tags=["proofread"], openapi_extra=_BODY,
             responses={code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 429, 503)})
async def proofread_api(request: Request, caller: Caller = require(Permission.CHAT)) -> ProofreadResponse:
    """公用文の表記を校正する / Proofread against the official style. JSON `{"text": ...}` or
    `{"document_id": ...}`, or a multipart upload in `file`. Offsets index `text` (returned for
    files and documents). Nothing is sent to a model."""
    state = state_of(request)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, StarletteUpload):
            raise ApiError(400, "file: upload the document in the form field 'file'", code="invalid_request", param="file")
        name, text = _document(await upload.read(), upload.filename)
        return _response(await _findings(state, caller, text, "file"), text, name, True)
    try:
        body = ProofreadRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(400, f"{where}: {first['msg']}", code="invalid_request", param=where) from None
    if (body.text is None) == (body.document_id is None):
        raise ApiError(400, "send exactly one of 'text' or 'document_id' (or upload a file)", code="invalid_request")
    if body.document_id is not None:
        name, text = await _stored(state, caller, body.document_id)
        return _response(await _findings(state, caller, text, "document"), text, name, True)
    return _response(await _findings(state, caller, body.text or "", "text"), body.text or "", None, False)


# --- the page -------------------------------------------------------------------------------------

def segments(text: str, findings: list[Finding]) -> tuple[list[dict[str, Any]], list[int]]:
    """The text cut into plain runs and marked findings. Overlapping findings cannot all be
    wrapped: the first of them is marked, the others (and long sentences) get a numbered
    reference at their end."""
    wrapped: dict[int, Finding] = {}
    at = 0
    for n, f in sorted(enumerate(findings, 1), key=lambda nf: (nf[1].start, nf[1].end)):
        if f.family != "long-sentence" and f.start >= at:
            wrapped[n] = f
            at = f.end
    refs = sorted((f.end, n) for n, f in enumerate(findings, 1) if n not in wrapped)
    cuts = sorted([(f.start, 0, n) for n, f in wrapped.items()] + [(end, 1, n) for end, n in refs])
    out, at = [], 0
    for offset, kind, n in cuts:
        if kind == 0:
            f = wrapped[n]
            out += [{"kind": "text", "text": text[at:f.start]},
                    {"kind": "mark", "n": n, "text": f.text, "family": f.family, "title": f.message}]
            at = f.end
        else:
            out += [{"kind": "text", "text": text[at:offset]}, {"kind": "ref", "n": n}]
            at = offset
    out.append({"kind": "text", "text": text[at:]})
    return [s for s in out if s["kind"] != "text" or s["text"]], sorted(wrapped)


@ui_router.get("/proofread")
async def proofread_page(request: Request, caller: Caller = page(Permission.CHAT)) -> Response:
    return render(request, "proofread.html", title="公用文校正", me=_me(caller), active="/proofread")


@ui_router.post("/ui/proofread")
async def ui_proofread(request: Request, text: str = Form("", max_length=MAX_CHARS),
                       file: UploadFile | None = File(None), caller: Caller = page(Permission.CHAT)) -> Response:
    state = state_of(request)
    if file is not None and file.filename:
        name, body = _document(await file.read(), file.filename)
        source = "file"
    elif text.strip():
        name, body, source = None, text, "text"
    else:
        raise ApiError(400, "文章を入力するか、ファイルを選んでください。/ Paste a text or choose a file.",
                       code="invalid_request")
    findings = await _findings(state, caller, body, source)
    parts, wrapped = segments(body, findings)
    items = [{"n": n, "f": f, "wrapped": n in wrapped} for n, f in enumerate(findings, 1)]
    return render(request, "_proofread_result.html", file_name=name, text=body, parts=parts, items=items,
                  counts=Counter(f.family_label for f in findings))

"""Translating the Gateway's governed results into what the HTTP layer sends: status, findings
without the found text, sources with their passages, faithfulness flags. One place, so the /v1
gateway, the native API and the web UI say the same thing about the same answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Response
from pydantic import BaseModel

from sekisho.server.errors import ApiError
from sekisho.server.schemas import EnergyOut, FaithfulnessOut, FindingOut, SekishoInfo, SentenceOut, SourceOut


async def rendered(runtime: Any, build: Callable[[], BaseModel]) -> Response:
    """The JSON of `build()`'s model, built and serialised off the event loop. A governed result
    carries a finding per masked value: 4 MB of phone numbers gave ~150,000, and building,
    re-validating and encoding that many models on the loop held every other request for about a
    second. (The route keeps its response_model for the OpenAPI schema.)"""
    body = await runtime.run(lambda: build().model_dump_json(by_alias=True).encode("utf-8"))
    return Response(body, media_type="application/json")


def findings_out(findings: Any) -> list[FindingOut]:
    return [FindingOut(entity=f.entity, label=f.label, where=f.where, action=f.action, start=f.start, end=f.end,
                       placeholder=f.placeholder) for f in findings or ()]


def blocked_error(governed: Any) -> ApiError:
    """The refusal for a blocked request: 403 when the policy denies the role any generation,
    otherwise 400 `guard_blocked`. The Gateway's message names the kinds of data, never the value."""
    message = governed.message or "request blocked by the governance policy / ポリシーによりブロックされました"
    if governed.reason.startswith("role:"):
        return ApiError(403, message, code="forbidden")
    return ApiError(400, message, code="guard_blocked")


def sources_out(hits: Any) -> list[SourceOut]:
    """Numbered sources: [n] in the answer text refers to sources[n-1]."""
    return [SourceOut(n=n, chunk_id=hit.chunk.id, document_id=hit.document.id, title=hit.document.title,
                      location=hit.chunk.location.label(), text=hit.chunk.text)
            for n, hit in enumerate(hits or (), start=1)]


def faithfulness_out(report: Any) -> FaithfulnessOut | None:
    if report is None:
        return None
    return FaithfulnessOut(
        score=round(float(report.score), 4), faithful=bool(report.faithful),
        invalid_citations=list(report.invalid_citations),
        sentences=[SentenceOut(text=s.text, cited=list(s.cited), support=round(float(s.support), 4),
                               supported=bool(s.supported), missing=list(s.missing)) for s in report.sentences])


def sekisho_info(governed: Any, *, rag: bool) -> SekishoInfo:
    answer = getattr(governed, "answer", None) if rag else None
    ok = governed.status == "ok"
    return SekishoInfo(
        status=governed.status, message=governed.message, backend=governed.backend,
        requested_backend=governed.requested_backend, audit_seq=governed.audit_seq, review_id=governed.review_id,
        findings=findings_out(governed.findings),
        sources=sources_out(answer.hits) if ok and answer is not None else [],
        faithfulness=faithfulness_out(answer.faithfulness) if ok and answer is not None else None,
        not_found=bool(answer.not_found) if ok and answer is not None else None,
        energy=EnergyOut(**governed.energy.to_json()) if governed.energy is not None else None,
    )

"""Translating the Gateway's governed results into what the HTTP layer sends: status, findings
without the found text, sources with their passages. One place, so the /v1 gateway, the native
API and the web UI say the same thing about the same answer."""

from __future__ import annotations

from typing import Any

from sekisho.server.errors import ApiError
from sekisho.server.schemas import FindingOut, SourceOut

HELD_MESSAGE = "この回答は確認待ちです。レビュー担当者の承認後に表示されます。(Held for review.)"


def findings_out(findings: Any) -> list[FindingOut]:
    out = []
    for f in findings or ():
        out.append(FindingOut(entity=str(getattr(f, "entity", "")), action=getattr(f, "action", None),
                              start=getattr(f, "start", None), end=getattr(f, "end", None)))
    return out


def blocked_error(governed: Any) -> ApiError:
    """A 400 naming the kinds of content that caused the block, never the content itself."""
    entities = sorted({f.entity for f in findings_out(getattr(governed, "findings", ()))})
    what = ", ".join(entities) if entities else "policy"
    reason = getattr(governed, "reason", "") or ""
    message = f"request blocked by the governance policy ({what}) / ポリシーによりブロックされました"
    if reason and not getattr(governed, "findings", None):
        message += f": {reason}"
    return ApiError(400, message, code="guard_blocked")


def sources_out(hits: Any, citations: Any = None) -> list[SourceOut]:
    """Numbered sources: [n] in the answer text refers to sources[n-1]."""
    out = []
    for n, hit in enumerate(hits or (), start=1):
        out.append(SourceOut(n=n, chunk_id=hit.chunk.id, document_id=hit.document.id, title=hit.document.title,
                             location=hit.chunk.location.label(), text=hit.chunk.text))
    return out

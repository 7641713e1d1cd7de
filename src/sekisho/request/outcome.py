"""What the request path hands back: the outcome of one governed request, and each guard finding
as callers and the audit log may see it (where, what kind, what was done; never the value)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sekisho.guard.findings import entity_label
from sekisho.models import Completion
from sekisho.models.energy import Energy

Status = Literal["ok", "blocked", "held"]


@dataclass(frozen=True)
class GuardAction:
    entity: str
    where: str  # "message[1]", "passage[3]", "question", "choice[0]", "stop[0]", "output"
    start: int
    end: int
    action: str  # an Action value; "flag" for output findings
    recognizer: str
    score: float
    placeholder: str | None = None

    @property
    def label(self) -> str:
        return entity_label(self.entity)

    def to_json(self) -> dict[str, Any]:
        out = {"entity": self.entity, "where": self.where, "start": self.start, "end": self.end,
               "action": self.action, "recognizer": self.recognizer, "score": round(self.score, 3)}
        if self.placeholder:
            out["placeholder"] = self.placeholder
        return out


@dataclass(frozen=True)
class Governed:
    """One governed request, concluded and audited.

    `completion` (and for questions `answer`, a sekisho.answer.Answer) only when ok, with masked
    values restored for the principal who asked. `message` says what to tell the user when the
    request was blocked or held (Japanese first); `reason` is short and machine-readable."""

    status: Status
    message: str
    completion: Completion | None
    findings: tuple[GuardAction, ...]
    backend: str  # the backend actually used (after any routing)
    audit_seq: int
    audit_hash: str
    answer: Any = None
    review_id: int | None = None
    requested_backend: str = ""
    reason: str = ""
    energy: Energy | None = None  # the model call's, as its audit record has it

    @property
    def text(self) -> str | None:
        if self.answer is not None:
            return self.answer.text
        return self.completion.text if self.completion is not None else None

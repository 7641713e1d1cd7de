"""One request on its way through the path: the typed state every step reads and extends."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sekisho.guard.findings import Finding
from sekisho.guard.masking import MaskSession
from sekisho.identity import Principal, current_request_id
from sekisho.models import ChatRequest, ModelInfo
from sekisho.models.energy import CallMeter
from sekisho.request.outcome import GuardAction


@dataclass
class Turn:
    principal: Principal
    purpose: str
    kind: str  # "chat" | "ask" | "choice": the audit record's kind
    requested: str  # the backend the caller named
    session: MaskSession
    request: ChatRequest  # as the caller gave it (unmasked); for questions, the grounded prompt
    question: str | None = None  # questions only
    hits: list[Any] = field(default_factory=list)  # questions only: the passages given, best first
    backend_name: str = ""  # the backend that answers (after routing)
    info: ModelInfo | None = None
    outbound: ChatRequest | None = None  # what the backend receives (masked as the policy says)
    audit_prompt: list[dict[str, str]] = field(default_factory=list)  # every finding masked
    findings: list[GuardAction] = field(default_factory=list)
    review_reasons: list[str] = field(default_factory=list)
    output_findings: list[Finding] = field(default_factory=list)
    blocked: str = ""  # user-facing message when blocked
    reason: str = ""
    readings: list[dict[str, Any]] = field(default_factory=list)  # read_passages = "each"
    choices: list[str] = field(default_factory=list)  # choose(): as audited
    meta: dict[str, Any] = field(default_factory=dict)  # the caller's labels: conversation, app, ...
    meter: CallMeter | None = None  # the model call's energy meter, once a model is called
    request_id: str = field(default_factory=current_request_id)
    started: float = field(default_factory=time.perf_counter)
    recorded: bool = False  # the one audit record is written

    @property
    def local(self) -> bool:
        return bool(self.info and self.info.local)

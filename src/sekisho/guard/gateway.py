"""The Gateway: the one door every model call goes through (CLI, HTTP API, OpenAI-compatible
gateway, arena), so that governance cannot be bypassed by choosing another door.

    gateway = Gateway(settings)
    result = gateway.complete(request, backend="vendor", principal=alice)
    result.status            # "ok" | "blocked" | "held"
    result.completion.text   # when ok, with masked values restored for alice

Pipeline: scan the prompt and the retrieved passages -> the policy for the backend's locality and
the principal's role (block / mask / route to a local backend) + the copyright prompt check ->
call the backend -> restore masks for the same principal -> scan the output (personal data and
similarity to registered works) -> hold for review when the policy says so -> append the audit
record (durable) -> return. Backend failures are audited too, then re-raised as BackendError.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from sekisho import __version__
from sekisho.audit.log import AuditLog
from sekisho.audit.review import ReviewQueue
from sekisho.audit.signing import sha256_hex
from sekisho.config import BackendConfig, Settings, resolve_path
from sekisho.guard.findings import Finding, entity_label
from sekisho.guard.masking import MaskSession, contains_placeholder
from sekisho.guard.policy import BUILT_IN, Action, Policy, PolicyError, policy_from_settings
from sekisho.guard.scan import scan
from sekisho.identity import Principal
from sekisho.models import Backend, BackendError, Capability, ChatRequest, Completion, Message, ModelInfo, open_backend
from sekisho.models.extractive import ExtractiveBackend

COPYRIGHT_PROMPT_ENTITY = "COPYRIGHT_STYLE"
COPYRIGHT_OUTPUT_ENTITY = "COPYRIGHT_SIMILAR"
_SENTENCE_END = re.compile(r"[。！？!?\n]")
_KEPT_SESSIONS = 1000  # held requests whose masks can still be restored on release (in memory only)


@dataclass(frozen=True)
class GuardAction:
    """One finding as reported to callers and the audit log: where, what kind, what was done;
    never the value."""

    entity: str
    where: str  # "message[1]", "passage[3]", "question", "choice[0]", "output"
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
class GovernedCompletion:
    status: str  # "ok" | "blocked" | "held"
    message: str  # what to tell the user (Japanese first)
    completion: Completion | None  # when ok: the text with masks restored for the requester
    findings: tuple[GuardAction, ...]
    backend: str  # the backend actually used (after any routing)
    audit_seq: int
    audit_hash: str
    review_id: int | None = None
    requested_backend: str = ""
    reason: str = ""  # short machine-readable reason when not ok

    @property
    def text(self) -> str | None:
        return self.completion.text if self.completion is not None else None


@dataclass(frozen=True)
class GovernedAnswer:
    status: str
    message: str
    answer: Any  # sekisho.answer.Answer when ok (text restored), else None
    findings: tuple[GuardAction, ...]
    backend: str
    audit_seq: int
    audit_hash: str
    review_id: int | None = None
    requested_backend: str = ""
    reason: str = ""


@dataclass
class _Turn:
    """One request on its way through the pipeline."""

    principal: Principal
    purpose: str
    kind: str
    requested: str
    session: MaskSession
    findings: list[GuardAction] = field(default_factory=list)
    review_reasons: list[str] = field(default_factory=list)
    output_findings: list[Finding] = field(default_factory=list)
    request: ChatRequest | None = None  # as the caller gave it (unmasked)
    question: str | None = None  # ask only
    hits: list[Any] = field(default_factory=list)  # ask only
    backend_name: str = ""
    info: ModelInfo | None = None
    outbound: ChatRequest | None = None
    audit_prompt: list[dict[str, str]] = field(default_factory=list)
    blocked: str = ""  # user-facing message when blocked
    reason: str = ""
    readings: list[dict[str, Any]] = field(default_factory=list)  # read_passages = "each"
    choices: list[str] = field(default_factory=list)  # choose(): as audited


# Who answers a question retrieval found no passage for: the built-in extractive answerer, which
# then says 資料に記載がありません. A model asked with no passage answers from its own knowledge:
# Qwen2.5-Coder-1.5B did for 13% of questions about things the documents do not cover
# (bench/answer_unanswerable.py, docs/benchmarks.md ## Answers). The audit record names it as used.
NO_PASSAGES = "資料なし (no passages)"


class Gateway:
    def __init__(self, settings: Settings, *, audit: AuditLog | None = None, review: ReviewQueue | None = None,
                 policy: Policy | None = None) -> None:
        self.settings = settings
        self.policy = policy or policy_from_settings(settings)
        route = self.policy.route_local_backend
        if route and route not in settings.models.backends and self.policy.source != BUILT_IN:
            raise PolicyError(f"{self.policy.source}: route_local_backend: backend {route!r} is not configured "
                              f"(configured: {', '.join(settings.models.backends)})")
        self._route_target = route if route in settings.models.backends else _first_local(settings)
        self.audit = audit or AuditLog.from_settings(settings)
        self.review = review or ReviewQueue(self.audit)
        self._backends: dict[str, Backend] = {
            NO_PASSAGES: ExtractiveBackend(BackendConfig(kind="extractive", local=True), name=NO_PASSAGES)}
        self._registry = self._copyright_registry()
        self._held_sessions: OrderedDict[int, MaskSession] = OrderedDict()

    # --- public face --------------------------------------------------------------------------

    def complete(self, request: ChatRequest, *, backend: str, principal: Principal,
                 purpose: str = "chat") -> GovernedCompletion:
        turn = self._prepare(request, backend, principal, purpose, kind="chat")
        if turn.blocked:
            return self._blocked(turn)
        raw = self._call(turn)
        return self._conclude(turn, replace(raw, text=turn.session.restore(raw.text, principal)))

    def choose(self, request: ChatRequest, choices: Sequence[str], *, backend: str, principal: Principal,
               purpose: str = "choice") -> GovernedCompletion:
        """The choice `backend` finds likeliest as the reply to `request`, scored without generating
        (multiple-choice questions). Governed as `complete` is: the choices are scanned with the
        prompt, and the audit record keeps every choice's log-likelihood. The completion's text is
        the chosen choice as the caller gave it."""
        if not choices or any(not c for c in choices):
            raise ValueError("choose needs non-empty choices")
        asked = len(request.messages)
        # Each choice travels as a candidate reply so that one scan, one mask and one audit copy
        # cover it; the backend and the audit record get them back apart.
        with_choices = replace(request, messages=[*request.messages, *(Message("assistant", c) for c in choices)])
        turn = self._prepare(with_choices, backend, principal, purpose, kind="choice")
        turn.choices = [m["content"] for m in turn.audit_prompt[asked:asked + len(choices)]]
        del turn.audit_prompt[asked:asked + len(choices)]
        where = {f"message[{asked + j}]": f"choice[{j}]" for j in range(len(choices))}
        turn.findings = [replace(f, where=where.get(f.where, f.where)) for f in turn.findings]
        if turn.blocked:
            return self._blocked(turn)
        scorer, outbound = self.backend(turn.backend_name), turn.outbound
        started = time.perf_counter()
        try:
            if not turn.info.can(Capability.SCORE_REPLIES):
                raise BackendError(f"backend {turn.backend_name!r} ({turn.info.kind}) cannot score choices")
            scores = scorer.choice_logprobs(replace(outbound, messages=outbound.messages[:asked]),
                                            [m.content for m in outbound.messages[asked:]])
        except BackendError as exc:
            self._append(turn, status="error", extra={"error": str(exc)})
            raise
        picked = max(range(len(scores)), key=scores.__getitem__)
        prompt_tokens = sum(scorer.count_tokens(m.content) for m in outbound.messages)
        completion = Completion(choices[picked], turn.info.model, prompt_tokens, 0,
                                latency_s=time.perf_counter() - started)
        return self._finish(turn, completion, extra={"choice_logprobs": [round(x, 4) for x in scores]})

    def ask(self, question: str, *, principal: Principal, backend: str, kb: Any, k: int = 5,
            purpose: str = "answer") -> GovernedAnswer:
        request, hits = self._retrieve(question, principal, kb, k, backend)
        turn = self._prepare(request, backend, principal, purpose, kind="ask", question=question, hits=hits)
        if turn.blocked:
            return self._blocked(turn)
        raw = self._call(turn)
        return self._conclude(turn, replace(raw, text=turn.session.restore(raw.text, principal)))

    def ask_stream(self, question: str, *, principal: Principal, backend: str, kb: Any, k: int = 5,
                   purpose: str = "answer") -> GovernedStream:
        """Like `ask`, streamed: iterate for the text (each sentence released once it passed the
        output checks, including support by the sources), then `.result` is the GovernedAnswer."""
        request, hits = self._retrieve(question, principal, kb, k, backend)
        return GovernedStream(self, request, backend, principal, purpose, question=question, hits=hits)

    def stream(self, request: ChatRequest, *, backend: str, principal: Principal,
               purpose: str = "chat") -> GovernedStream:
        return GovernedStream(self, request, backend, principal, purpose)

    def release(self, review_id: int, principal: Principal) -> GovernedCompletion:
        """The approved output of a held request, for the principal who asked: placeholders are
        restored while this process still holds the request's mapping (never persisted)."""
        item = self.review.release(review_id, principal)
        entry = self.audit.get(item.audit_seq)
        session = self._held_sessions.get(review_id)
        text = item.final_text or ""
        restored = session.restore(text, principal) if session is not None else text
        record = entry.record if entry is not None else {}
        backend = record.get("backend") or {}
        message = ""
        if session is None and contains_placeholder(text):
            message = ("この回答の伏せ字は元に戻せません（依頼時の対応表は保存されないため）。"
                       "(masked values stay masked: their mapping lived only in the process that held the request)")
        completion = Completion(text=restored, model=backend.get("model", ""), prompt_tokens=0, completion_tokens=0)
        return GovernedCompletion("ok", message, completion, (), backend.get("used", ""), item.audit_seq,
                                  entry.hash if entry is not None else "", review_id, backend.get("requested", ""))

    def backend(self, name: str) -> Backend:
        if name not in self._backends:
            self._backends[name] = open_backend(self.settings, name)
        return self._backends[name]

    # --- pipeline -----------------------------------------------------------------------------

    def _retrieve(self, question: str, principal: Principal, kb: Any, k: int,
                  backend: str) -> tuple[ChatRequest, list[Any]]:
        from sekisho.answer import build_request

        floor = self.settings.retrieval.min_score if kb.scores_are_probabilities else 0.0
        hits = self._passages_for(backend, kb.search(question, k=k, tags=principal.tags), floor)
        return build_request(question, hits), hits

    def _passages_for(self, backend: str, hits: list[Any], floor: float = 0.0) -> list[Any]:
        """Of `hits` (best first), those `backend` is given (answer.reading.passage_policy)."""
        from sekisho.answer import confident_hits
        from sekisho.answer.reading import passage_policy

        share, limit = passage_policy(self.settings.models.backends.get(backend),
                                      self.settings.retrieval.min_relative_score)
        return confident_hits(hits, share, limit, floor)

    def _prepare(self, request: ChatRequest, backend: str, principal: Principal, purpose: str, kind: str,
                 question: str | None = None, hits: list[Any] | None = None) -> _Turn:
        turn = _Turn(principal=principal, purpose=purpose, kind=kind, requested=backend,
                     session=MaskSession(principal), backend_name=backend, request=request,
                     question=question, hits=hits or [])
        texts, scanned = self._scan(request)
        turn.info = self.backend(backend).info()
        actions = self._decide(scanned, turn.info.local, principal)
        if not self.policy.may_generate(principal.role):
            turn.blocked = (f"役割「{principal.role}」はモデルを利用できません。"
                            f"(role '{principal.role}' may not generate)")
            turn.reason = f"role:{principal.role}"
        elif any(a == Action.BLOCK for _, _, a in actions):
            kinds = _kinds(f for f, _, a in actions if a == Action.BLOCK)
            turn.blocked = (f"{'・'.join(entity_label(e) for e in kinds)}が含まれているため、"
                            f"モデル「{backend}」には送信できません。該当箇所を削除して再度お試しください。"
                            f"(blocked: {', '.join(kinds)})")
            turn.reason = "blocked:" + ",".join(kinds)
        elif not turn.info.local and any(a == Action.ROUTE_LOCAL for _, _, a in actions):
            local = self._route_target
            local_info = self.backend(local).info() if local else None
            if local_info is None or not local_info.local:
                kinds = _kinds(f for f, _, a in actions if a == Action.ROUTE_LOCAL)
                turn.blocked = (f"{'・'.join(entity_label(e) for e in kinds)}を含むため外部モデルには送信できず、"
                                f"転送先のローカルモデルも設定されていません。(blocked: no local backend to route to)")
                turn.reason = "blocked:no_local_backend"
            else:
                turn.backend_name, turn.info = local, local_info
                hits = self._passages_for(local, turn.hits) if kind == "ask" else turn.hits
                if len(hits) < len(turn.hits):
                    # The passages were chosen for the requested backend; the one answering may
                    # take fewer (a small local model confused by a second passage).
                    from sekisho.answer import build_request

                    turn.hits = hits
                    request = turn.request = build_request(question or "", turn.hits)
                    texts, scanned = self._scan(request)
                actions = self._decide(scanned, True, principal)
        to_mask: dict[str, list[Finding]] = {}
        for finding, where, action in actions:
            if action == Action.MASK and not turn.blocked:
                to_mask.setdefault(where, []).append(finding)
            if action == Action.REVIEW:
                turn.review_reasons.append(f"entity:{finding.entity}")
        masked = {where: turn.session.mask(text, to_mask.get(where, []))[0] for where, text in texts.items()}
        # The audit copy replaces every finding, masked for the backend or not.
        audited = {where: turn.session.mask(text, scanned[where])[0] for where, text in texts.items()}
        for finding, where, action in actions:
            token = turn.session.placeholder(finding.entity, finding.text)
            turn.findings.append(GuardAction(finding.entity, where, finding.start, finding.end, str(action),
                                             finding.recognizer, finding.score, token))
        turn.outbound = self._rebuild(request, masked)
        turn.audit_prompt = [{"role": m.role, "content": audited[f"message[{i}]"]}
                             for i, m in enumerate(request.messages)]
        if request.question is not None:
            turn.audit_prompt.append({"role": "question", "content": audited["question"]})
        if principal.role in self.policy.review.roles:
            turn.review_reasons.append(f"role:{principal.role}")
        if purpose in self.policy.review.purposes:
            turn.review_reasons.append(f"purpose:{purpose}")
        if kind == "ask" and request.passages == [] and not turn.blocked:
            turn.backend_name, turn.info = NO_PASSAGES, self.backend(NO_PASSAGES).info()
        return turn

    def _scan(self, request: ChatRequest) -> tuple[dict[str, str], dict[str, list[Finding]]]:
        """Every text of `request` by place, and what the recognisers (and, for the prompt, the
        copyright registry) found in each."""
        texts = self._texts(request)
        scanned = _scan_all(texts)
        if self._registry is not None:
            for where, text in texts.items():
                if where.startswith(("message", "question")):
                    scanned[where] = scanned[where] + list(self._check_prompt(text))
        return texts, scanned

    def _decide(self, scanned: dict[str, list[Finding]], local: bool,
                principal: Principal) -> list[tuple[Finding, str, Action]]:
        return [(f, where, self.policy.action_for(f.entity, local=local, role=principal.role))
                for where, findings in scanned.items() for f in findings]

    @staticmethod
    def _texts(request: ChatRequest) -> dict[str, str]:
        texts = {f"message[{i}]": m.content for i, m in enumerate(request.messages)}
        for p in request.passages or ():
            texts[f"passage[{p.n}]"] = p.text
        if request.question is not None:
            texts["question"] = request.question
        return texts

    @staticmethod
    def _rebuild(request: ChatRequest, masked: dict[str, str]) -> ChatRequest:
        messages = [Message(m.role, masked[f"message[{i}]"]) for i, m in enumerate(request.messages)]
        passages = [replace(p, text=masked[f"passage[{p.n}]"]) for p in request.passages] if request.passages else request.passages
        question = masked["question"] if request.question is not None else None
        return replace(request, messages=messages, passages=passages, question=question)

    def _call(self, turn: _Turn) -> Completion:
        try:
            if self._reads_apart(turn):
                return self._read_each(turn)
            return self.backend(turn.backend_name).complete(turn.outbound)
        except BackendError as exc:
            self._append(turn, status="error", extra={"error": str(exc)})
            raise

    def _reads_apart(self, turn: _Turn) -> bool:
        from sekisho.answer.reading import reads_apart

        return (turn.kind == "ask" and reads_apart(self.settings.models.backends.get(turn.backend_name))
                and len(turn.outbound.passages or []) > 1)

    def _read_each(self, turn: _Turn) -> Completion:
        """One request per passage (each already masked as the policy says); the turn is narrowed
        to the reading kept, so its citation [1] resolves to that passage, and every reading is
        recorded for the audit."""
        from sekisho.answer import build_request
        from sekisho.answer.reading import best_reading, combined_completion, read_each

        started = time.perf_counter()
        outbound = turn.outbound
        readings = read_each(outbound.question or "", outbound.passages, [h.score for h in turn.hits],
                             self.backend(turn.backend_name), max_tokens=outbound.max_tokens)
        kept = best_reading(readings)
        turn.readings = [{"chunk_id": p.chunk_id, "probability": round(r.probability, 6),
                          "answer": turn.session.mask_known(r.completion.text),
                          "answer_logprob": round(r.answer_logprob, 4),
                          "not_found_logprob": round(r.not_found_logprob, 4),
                          "context": round(r.context, 4), "together": round(r.together, 4),
                          "score": round(r.score, 4), "kept": i == kept}
                         for i, (p, r) in enumerate(zip(outbound.passages, readings))]
        turn.hits = [turn.hits[kept]]
        turn.request = build_request(turn.question or "", turn.hits)
        turn.outbound = readings[kept].request
        turn.audit_prompt = [{"role": m.role, "content": turn.session.mask_known(m.content)}
                             for m in turn.outbound.messages]
        return combined_completion(readings, kept, started)

    def _guard_output(self, turn: _Turn, text: str) -> None:
        turn.output_findings = scan(text)
        for f in turn.output_findings:
            turn.findings.append(GuardAction(f.entity, "output", f.start, f.end, "flag", f.recognizer, f.score,
                                             turn.session.placeholder(f.entity, f.text)))
            if self.policy.action_for(f.entity, local=turn.info.local, role=turn.principal.role) == Action.REVIEW:
                turn.review_reasons.append(f"entity:{f.entity}")
        if self._registry is not None:
            similar = list(self._check_output(text))
            for f in similar:
                turn.findings.append(GuardAction(f.entity, "output", f.start, f.end, "flag", f.recognizer, f.score))
            if similar and self.policy.review.copyright:
                turn.review_reasons.append("copyright")

    def _blocked(self, turn: _Turn) -> GovernedCompletion | GovernedAnswer:
        extra = {"sources": [_source(h) for h in turn.hits]} if turn.kind == "ask" else {}
        result = self._completion_result(turn, "blocked", None, self._append(turn, status="blocked", extra=extra))
        return _as_answer(result, None) if turn.kind == "ask" else result

    def _conclude(self, turn: _Turn, completion: Completion, extra: dict[str, Any] | None = None) -> Any:
        """Everything after the (restored) output exists: output guard, the answer's support
        check for `ask`, review hold, audit. Returns GovernedCompletion, or GovernedAnswer for ask."""
        from sekisho.answer import finish

        self._guard_output(turn, completion.text)
        extra = dict(extra or {})
        if turn.kind != "ask":
            extra["sources"] = _passage_sources(turn.request)
            return self._finish(turn, completion, extra=extra)
        answer = finish(turn.question or "", turn.hits, turn.request, completion)
        report = answer.faithfulness
        if self.policy.review.holds_answer(report, not_found=answer.not_found):
            turn.review_reasons.append("unsupported_claims")
        extra.update({"sources": [_source(h) for h in turn.hits], "not_found": answer.not_found,
                      "faithfulness": {"score": round(report.score, 3),
                                       "unsupported_sentences": len(report.unsupported),
                                       "invalid_citations": list(report.invalid_citations)}})
        result = self._finish(turn, completion, extra=extra)
        return _as_answer(result, answer if result.status == "ok" else None)

    def _finish(self, turn: _Turn, completion: Completion, *, extra: dict[str, Any]) -> GovernedCompletion:
        reasons = list(dict.fromkeys(turn.review_reasons))
        audited_output = turn.session.mask_known(turn.session.mask(completion.text, turn.output_findings)[0])
        record = {**extra, "output": audited_output, "finish_reason": completion.finish_reason,
                  "tokens": {"prompt": completion.prompt_tokens, "completion": completion.completion_tokens},
                  "latency_s": round(completion.latency_s, 4)}
        if reasons:
            record["review_reasons"] = reasons
            with self.audit.transaction() as conn:
                entry = self.audit.append_in(conn, turn.kind, self._record(turn, "held", record))
                review_id = self.review.hold_in(conn, audited_output, reasons, turn.principal, entry.seq)
            self._keep_session(review_id, turn.session)
            result = self._completion_result(turn, "held", None, entry, review_id)
            return replace(result, message=(f"回答は確認待ちです（レビュー番号 {review_id}）。承認後に表示されます。"
                                            f"(held for review, review id {review_id}: {', '.join(reasons)})"),
                           reason="held:" + ",".join(reasons))
        entry = self.audit.append(turn.kind, self._record(turn, "ok", record))
        return self._completion_result(turn, "ok", completion, entry)

    def _record(self, turn: _Turn, status: str, extra: dict[str, Any]) -> dict[str, Any]:
        info = turn.info
        record = {
            "principal": turn.principal.name,
            "role": str(turn.principal.role),
            "purpose": turn.purpose,
            "status": status,
            "backend": {"requested": turn.requested, "used": turn.backend_name,
                        "kind": info.kind if info else "", "model": info.model if info else "",
                        "version": info.version if info else "", "local": info.local if info else None},
            "prompt": turn.audit_prompt,
            "chunk_ids": [p.chunk_id for p in (turn.outbound.passages or [])] if turn.outbound else [],
            "findings": [f.to_json() for f in turn.findings],
            "masked_values": sorted(self.audit.keyed_hash(v) for _, v in turn.session.masked_values())
            if self.audit.key is not None else [],
            "policy": self.policy.source,
            "generator": f"sekisho/{__version__}",
        }
        if turn.reason:
            record["reason"] = turn.reason
        if turn.readings:
            record["readings"] = turn.readings
        if turn.choices:
            record["choices"] = turn.choices
        record.update(extra)
        return record

    def _append(self, turn: _Turn, *, status: str, extra: dict[str, Any] | None = None):
        return self.audit.append(turn.kind, self._record(turn, status, extra or {}))

    def _completion_result(self, turn: _Turn, status: str, completion: Completion | None, entry: Any,
                           review_id: int | None = None) -> GovernedCompletion:
        return GovernedCompletion(status=status, message=turn.blocked if status == "blocked" else "",
                                  completion=completion, findings=tuple(turn.findings), backend=turn.backend_name,
                                  audit_seq=entry.seq, audit_hash=entry.hash, review_id=review_id,
                                  requested_backend=turn.requested, reason=turn.reason)

    def _keep_session(self, review_id: int, session: MaskSession) -> None:
        self._held_sessions[review_id] = session
        while len(self._held_sessions) > _KEPT_SESSIONS:
            self._held_sessions.popitem(last=False)

    # --- copyright ----------------------------------------------------------------------------

    def _copyright_registry(self) -> Any:
        path = self.settings.guard.copyright_registry
        if not path:
            return None
        from sekisho.guard.copyright import load_registry

        return load_registry(resolve_path(self.settings, path))

    def _check_prompt(self, text: str) -> list[Finding]:
        from sekisho.guard.copyright import check_prompt

        return list(check_prompt(text, self._registry))

    def _check_output(self, text: str) -> list[Finding]:
        from sekisho.guard.copyright import check_output

        return list(check_output(text, self._registry, self.policy.copyright_threshold))


class GovernedStream:
    """Iterate for the text (masks restored), released sentence by sentence once each has passed
    the output checks (similarity to registered works; for answers, support by the sources);
    `.result` is the GovernedCompletion (GovernedAnswer for `ask_stream`) once iteration ends.
    An output that turns out to need review stops the stream and is held; what was already shown
    stays shown, which is why requests known to need review before the call are not streamed."""

    def __init__(self, gateway: Gateway, request: ChatRequest, backend: str, principal: Principal, purpose: str,
                 *, question: str | None = None, hits: list[Any] | None = None):
        self._gateway, self._request, self._backend = gateway, request, backend
        self._principal, self._purpose = principal, purpose
        self._question, self._hits = question, hits
        self.result: Any = None

    def __iter__(self) -> Iterator[str]:
        gw, principal = self._gateway, self._principal
        kind = "ask" if self._question is not None else "chat"
        turn = gw._prepare(self._request, self._backend, principal, self._purpose, kind=kind,
                           question=self._question, hits=self._hits)
        if turn.blocked:
            self.result = gw._blocked(turn)
            return
        if turn.review_reasons or gw._reads_apart(turn):
            # Held answers are never shown in part; passages read apart are answered once the
            # readings are compared, then released whole if the checks pass.
            raw = gw._call(turn)
            self.result = gw._conclude(turn, replace(raw, text=turn.session.restore(raw.text, principal)))
            if self.result.status == "ok":
                yield self.result.answer.text if kind == "ask" else self.result.completion.text
            return
        backend = gw.backend(turn.backend_name)
        started = time.perf_counter()
        shown: list[str] = []
        pending = ""
        held = False
        try:
            for piece in turn.session.restore_stream(backend.stream(turn.outbound), principal):
                pending += piece
                if held:
                    continue
                cut = max((m.end() for m in _SENTENCE_END.finditer(pending)), default=0)
                if cut and self._releasable(turn, "".join(shown) + pending[:cut]):
                    shown.append(pending[:cut])
                    yield pending[:cut]
                    pending = pending[cut:]
                elif cut:
                    held = True
        except BackendError as exc:
            gw._append(turn, status="error", extra={"error": str(exc), "shown_chars": len("".join(shown))})
            raise
        except GeneratorExit:
            # The reader went away mid-answer (closed connection, Ctrl-C): what it saw is audited.
            gw._append(turn, status="cancelled", extra={
                "output": turn.session.mask_known("".join(shown)), "shown_chars": len("".join(shown))})
            raise
        text = "".join(shown) + pending
        if not held and pending and self._releasable(turn, text):
            shown.append(pending)
            yield pending
        completion = Completion(text=text, model=turn.info.model, prompt_tokens=sum(
            backend.count_tokens(m.content) for m in turn.outbound.messages),
            completion_tokens=backend.count_tokens(text), latency_s=time.perf_counter() - started)
        self.result = gw._conclude(turn, completion, {"streamed": True, "shown_chars": len("".join(shown))})

    def _releasable(self, turn: _Turn, text: str) -> bool:
        """May the user see `text` (everything so far) before the whole output is checked?"""
        gw = self._gateway
        if gw._registry is not None and gw.policy.review.copyright and gw._check_output(text):
            return False
        if turn.kind == "ask":
            from sekisho.answer import check_faithfulness, is_not_found

            report = check_faithfulness(text, turn.request.passages or [])
            return not gw.policy.review.holds_answer(report, not_found=is_not_found(text))
        return True


def _as_answer(result: GovernedCompletion, answer: Any) -> GovernedAnswer:
    return GovernedAnswer(result.status, result.message, answer, result.findings, result.backend, result.audit_seq,
                          result.audit_hash, result.review_id, result.requested_backend, result.reason)


@lru_cache(maxsize=256)
def _scan_cached(text: str) -> tuple[Finding, ...]:
    """System prompts and instructions repeat on every request; their scan does not change."""
    return tuple(scan(text))


def _scan_all(texts: dict[str, str]) -> dict[str, list[Finding]]:
    """Findings per text. The grounded prompt embeds each passage and the question verbatim in
    the user message, so their findings are taken from the message's scan (shifted) instead of
    scanning the same characters twice; a text not found verbatim is scanned on its own."""
    messages = {w: t for w, t in texts.items() if w.startswith("message")}
    scanned = {w: list(_scan_cached(t)) if len(t) < 2000 else scan(t) for w, t in messages.items()}
    for where, text in texts.items():
        if where in scanned:
            continue
        core = text.strip()
        lead = len(text) - len(text.lstrip())
        for host, host_text in messages.items():
            offset = host_text.find(core) if core else -1
            if offset >= 0:
                scanned[where] = [replace(f, start=f.start - offset + lead, end=f.end - offset + lead)
                                  for f in scanned[host] if f.start >= offset and f.end <= offset + len(core)]
                break
        else:
            scanned[where] = scan(text)
    return scanned


def _first_local(settings: Settings) -> str:
    """Where the built-in policy routes when its `extractive` is not configured: the first backend
    that runs here (extractive, llama.cpp) or that the operator declared local."""
    for name, config in settings.models.backends.items():
        if config.local is True or (config.local is None and config.kind in ("extractive", "llama.cpp")):
            return name
    return ""


def _kinds(findings: Any) -> list[str]:
    return sorted({f.entity for f in findings})


def _passage_sources(request: ChatRequest) -> list[dict[str, Any]]:
    """Sources of a request that arrived with its passages (no knowledge-base hit at hand)."""
    return [{"chunk_id": p.chunk_id, "title": p.title, "chunk_sha256": sha256_hex(p.text.encode("utf-8"))}
            for p in request.passages or ()]


def _source(hit: Any) -> dict[str, Any]:
    chunk, doc = hit.chunk, hit.document
    return {"chunk_id": chunk.id, "doc_id": doc.id, "path": doc.path, "title": doc.title,
            "location": chunk.location.label(), "document_sha256": doc.content_hash,
            "chunk_sha256": sha256_hex(chunk.text.encode("utf-8"))}

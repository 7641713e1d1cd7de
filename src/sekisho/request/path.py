"""The one governed request path every door calls: the CLI, the native API, the OpenAI-compatible
gateway, the arena, the apps.

    path = RequestPath(settings)
    governed = path.complete(request, backend="vendor", principal=alice)
    governed.status            # "ok" | "blocked" | "held"
    governed.completion.text   # when ok, with masked values restored for alice

Steps, in order, on one typed `Turn`:

    retrieve (questions) -> scan every forwarded text -> policy: block / mask / route to a local
    model -> call the model -> restore masks for the same principal -> check the output (personal
    data, similarity to registered works, support by the sources) -> hold for review -> record

Every turn leaves through `_record`, which writes its one audit record (durable before the caller
sees anything) and, for a held output, queues the review in the same transaction: blocked, held,
ok, failed and cancelled requests alike. The guard package only checks; deciding and recording
happen here. The record carries the tokens the call used and the energy it took (`energy`:
joules, source, label; models/energy.py says what can be attributed to one call), and the
tokens are charged to the principal's quota (`charge`, given by the server) as the record is
written.

Concurrency: every method is safe to call from many threads at once. The `a`-prefixed methods are
the same path for an event loop (the server): the checks run on the path's thread pool, the model
call runs as the backend can take it (ModelCalls): awaited on its own async client, on the pool
when the backend serves many requests at once, or queued on the model's one thread otherwise.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import Any

from sekisho import __version__
from sekisho.audit.log import AuditLog
from sekisho.audit.review import ReviewQueue
from sekisho.audit.signing import sha256_hex
from sekisho.config import BackendConfig, Settings, resolve_path
from sekisho.errors import InvalidInput, one_line
from sekisho.guard.findings import Finding, entity_label
from sekisho.guard.masking import MaskSession, contains_placeholder
from sekisho.guard.policy import BUILT_IN, Action, Policy, PolicyError, policy_from_settings
from sekisho.guard.registry import MAX_SCAN_CHARS
from sekisho.identity import Principal, Role
from sekisho.models import Backend, BackendError, Capability, ChatRequest, Completion, Message, ModelInfo, open_backend
from sekisho.models.energy import CallMeter, Energy, Metering
from sekisho.models.extractive import ExtractiveBackend
from sekisho.request.calls import ModelCalls
from sekisho.request.outcome import Governed, GuardAction
from sekisho.request.text import check_text, valid_text
from sekisho.request.turn import Turn

log = logging.getLogger("sekisho.request")

# Who answers a question retrieval found no passage for: the built-in extractive answerer, which
# then says 資料に記載がありません. A model asked with no passage answers from its own knowledge:
# Qwen2.5-Coder-1.5B did for 13% of questions about things the documents do not cover
# (bench/answer_unanswerable.py, docs/benchmarks.md ## Answers). The audit record names it as used.
NO_PASSAGES = "資料なし (no passages)"
_KEPT_SESSIONS = 1000  # held requests whose masks can still be restored on release (in memory only)
# What the audit log keeps of one text: the head, and the sha256 of the whole. A 4 MB prompt
# stored whole per request lets one client grow the log by gigabytes (docs/benchmarks.md).
AUDIT_TEXT_CHARS = 20_000
NO_CALL = "モデル呼び出しなし (no model call)"


class RequestPath:
    def __init__(self, settings: Settings, *, audit: AuditLog | None = None, review: ReviewQueue | None = None,
                 policy: Policy | None = None, threads: int = 32,
                 charge: Callable[[Principal, int], None] | None = None) -> None:
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
        # The checks (scanning, retrieval, faithfulness, the audit append) of async callers run
        # here, never on the event loop.
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sekisho-path")
        # A model's answer longer than the output checks read is refused (a stream stops there).
        self.max_output_chars = MAX_SCAN_CHARS
        self.calls = ModelCalls(self.pool, timeout_s=self._timeout_s)
        self.metering = Metering(watts_per_core=settings.models.watts_per_core)
        self._meters: dict[str, Callable[[], CallMeter]] = {}
        # Who pays for the tokens of each recorded turn (the server's quotas); None: nobody counts.
        self._charge = charge

    def _timeout_s(self, backend: str) -> float:
        config = self.settings.models.backends.get(backend)
        return config.timeout_s if config is not None else 600.0

    def close(self) -> None:
        self.calls.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        for name, backend in self._backends.items():
            close = getattr(backend, "close", None)
            if name != NO_PASSAGES and callable(close):
                close()

    def add_tool(self, name: str, produce: Callable[[ChatRequest], str], *, version: str = "1") -> None:
        """Make a tool of this server (the proofreading rules, say) answerable like a model, under
        `name`: a request to it is scanned, checked, held and recorded like any other, and its
        audit record names the tool as the backend used."""
        self._backends[name] = LocalTool(name, produce, version)

    def audit_copy(self, text: str, principal: Principal | None = None) -> str:
        """`text` as the audit log may keep it (free text a user typed beside a request: a feedback
        reason, say): every finding replaced by its placeholder, capped."""
        session = MaskSession(principal or Principal("audit", Role.AUDITOR), labels=self.policy.registry.labels)
        found = self.policy.registry.scan(text, deadline=time.monotonic() + self.settings.guard.scan_budget_s)
        return capped(session.mask(text, found)[0])

    def backend(self, name: str) -> Backend:
        if name not in self._backends:
            self._backends[name] = open_backend(self.settings, name)
        return self._backends[name]

    # --- the doors: one method per kind of request, sync and async ---------------------------------

    def complete(self, request: ChatRequest, *, backend: str, principal: Principal, purpose: str = "chat",
                 meta: dict[str, Any] | None = None) -> Governed:
        turn = self.open_chat(request, backend, principal, purpose, meta)
        return self._blocked(turn) if turn.blocked else self.conclude(turn, self._call(turn))

    async def acomplete(self, request: ChatRequest, *, backend: str, principal: Principal, purpose: str = "chat",
                        meta: dict[str, Any] | None = None) -> Governed:
        turn = await self.off_loop(self.open_chat, request, backend, principal, purpose, meta)
        if turn.blocked:
            return await self.off_loop(self._blocked, turn)
        return await self.off_loop(self.conclude, turn, await self._acall(turn))

    def ask(self, question: str, *, principal: Principal, backend: str, kb: Any, k: int = 5, purpose: str = "answer",
            meta: dict[str, Any] | None = None) -> Governed:
        turn = self.open_question(question, principal, backend, kb, k, purpose, meta)
        return self._blocked(turn) if turn.blocked else self.conclude(turn, self._call(turn))

    async def aask(self, question: str, *, principal: Principal, backend: str, kb: Any, k: int = 5,
                   purpose: str = "answer", meta: dict[str, Any] | None = None) -> Governed:
        turn = await self.off_loop(self.open_question, question, principal, backend, kb, k, purpose, meta)
        if turn.blocked:
            return await self.off_loop(self._blocked, turn)
        return await self.off_loop(self.conclude, turn, await self._acall(turn))

    def choose(self, request: ChatRequest, choices: Sequence[str], *, backend: str, principal: Principal,
               purpose: str = "choice", meta: dict[str, Any] | None = None) -> Governed:
        """The choice `backend` finds likeliest as the reply to `request`, scored without generating
        (multiple-choice questions). Governed as `complete` is: the choices are scanned with the
        prompt, and the audit record keeps every choice's log-likelihood. The completion's text is
        the chosen choice as the caller gave it."""
        if not choices or any(not c for c in choices):
            raise InvalidInput("choose needs non-empty choices")
        asked = len(request.messages)
        # Each choice travels as a candidate reply so that one scan, one mask and one audit copy
        # cover it; the backend and the audit record get them back apart.
        with_choices = replace(request, messages=[*request.messages, *(Message("assistant", c) for c in choices)])
        turn = self._prepare(self._turn(with_choices, backend, principal, purpose, "choice", meta))
        turn.choices = [m["content"] for m in turn.audit_prompt[asked:asked + len(choices)]]
        del turn.audit_prompt[asked:asked + len(choices)]
        where = {f"message[{asked + j}]": f"choice[{j}]" for j in range(len(choices))}
        turn.findings = [replace(f, where=where.get(f.where, f.where)) for f in turn.findings]
        if turn.blocked:
            return self._blocked(turn)
        outbound = turn.outbound
        started = time.perf_counter()
        try:
            if not turn.info.can(Capability.SCORE_REPLIES):
                raise BackendError(f"backend {turn.backend_name!r} ({turn.info.kind}) cannot score choices")
            scorer: Any = self.backend(turn.backend_name)
            scores = self.calls.run(turn.backend_name, turn.info, scorer.choice_logprobs,
                                    replace(outbound, messages=outbound.messages[:asked]),
                                    [m.content for m in outbound.messages[asked:]], meter=self.meter(turn))
        except BackendError as exc:
            self._record(turn, "error", extra={"error": str(exc)})
            raise
        picked = max(range(len(scores)), key=scores.__getitem__)
        prompt_tokens = sum(scorer.count_tokens(m.content) for m in outbound.messages)
        completion = Completion(choices[picked], turn.info.model, prompt_tokens, 0,
                                latency_s=time.perf_counter() - started)
        return self._finish(turn, completion, extra={"choice_logprobs": [round(x, 4) for x in scores]})

    def stream(self, request: ChatRequest, *, backend: str, principal: Principal, purpose: str = "chat",
               meta: dict[str, Any] | None = None):
        from sekisho.request.streaming import GovernedStream

        return GovernedStream(self, lambda: self.open_chat(request, backend, principal, purpose, meta))

    def ask_stream(self, question: str, *, principal: Principal, backend: str, kb: Any, k: int = 5,
                   purpose: str = "answer", meta: dict[str, Any] | None = None):
        """Like `ask`, streamed: iterate for the text (each sentence released once it passed the
        output checks, including support by the sources), then `.result` is the Governed."""
        from sekisho.request.streaming import GovernedStream

        return GovernedStream(self, lambda: self.open_question(question, principal, backend, kb, k, purpose, meta))

    def astream(self, request: ChatRequest, *, backend: str, principal: Principal, purpose: str = "chat",
                meta: dict[str, Any] | None = None):
        from sekisho.request.streaming import AsyncGovernedStream

        return AsyncGovernedStream(self, lambda: self.open_chat(request, backend, principal, purpose, meta))

    def aask_stream(self, question: str, *, principal: Principal, backend: str, kb: Any, k: int = 5,
                    purpose: str = "answer", meta: dict[str, Any] | None = None):
        from sekisho.request.streaming import AsyncGovernedStream

        return AsyncGovernedStream(
            self, lambda: self.open_question(question, principal, backend, kb, k, purpose, meta))

    def release(self, review_id: int, principal: Principal) -> Governed:
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
        return Governed("ok", message, completion, (), backend.get("used", ""), item.audit_seq,
                        entry.hash if entry is not None else "", review_id=review_id,
                        requested_backend=backend.get("requested", ""))

    # --- opening a turn: retrieval, then the input checks and the policy's decision ------------------

    def open_chat(self, request: ChatRequest, backend: str, principal: Principal, purpose: str,
                  meta: dict[str, Any] | None) -> Turn:
        return self._prepare(self._turn(request, backend, principal, purpose, "chat", meta))

    def open_question(self, question: str, principal: Principal, backend: str, kb: Any, k: int, purpose: str,
                      meta: dict[str, Any] | None) -> Turn:
        from sekisho.answer import build_request

        check_text({"question": question})
        floor = self.settings.retrieval.min_score if kb.scores_are_probabilities else 0.0
        hits = self._passages_for(backend, kb.search(question, k=k, tags=principal.tags), floor)
        turn = self._turn(build_request(question, hits), backend, principal, purpose, "ask", meta)
        turn.question, turn.hits = question, hits
        return self._prepare(turn)

    def _turn(self, request: ChatRequest, backend: str, principal: Principal, purpose: str, kind: str,
              meta: dict[str, Any] | None) -> Turn:
        return Turn(principal=principal, purpose=purpose, kind=kind, requested=backend,
                    session=MaskSession(principal, labels=self.policy.registry.labels),
                    request=request, backend_name=backend, meta=dict(meta or {}))

    def _passages_for(self, backend: str, hits: list[Any], floor: float = 0.0) -> list[Any]:
        """Of `hits` (best first), those `backend` is given (answer.reading.passage_policy)."""
        from sekisho.answer import confident_hits
        from sekisho.answer.reading import passage_policy

        share, limit = passage_policy(self.settings.models.backends.get(backend),
                                      self.settings.retrieval.min_relative_score)
        return confident_hits(hits, share, limit, floor)

    def _prepare(self, turn: Turn) -> Turn:
        request, principal = turn.request, turn.principal
        texts, scanned = self._scan(request)
        turn.info = self.backend(turn.backend_name).info()
        actions = self._decide(scanned, turn.info.local, principal)
        if not self.policy.may_generate(principal.role):
            turn.blocked = (f"役割「{principal.role}」はモデルを利用できません。"
                            f"(role '{principal.role}' may not generate)")
            turn.reason = f"role:{principal.role}"
        elif any(a == Action.BLOCK for _, _, a in actions):
            kinds = _kinds(f for f, _, a in actions if a == Action.BLOCK)
            turn.blocked = (f"{'・'.join(entity_label(e) for e in kinds)}が含まれているため、"
                            f"モデル「{turn.backend_name}」には送信できません。該当箇所を削除して再度お試しください。"
                            f"(blocked: {', '.join(kinds)})")
            turn.reason = "blocked:" + ",".join(kinds)
        elif not turn.info.local and any(a == Action.ROUTE_LOCAL for _, _, a in actions):
            texts, scanned, actions = self._route_local(turn, actions, texts, scanned)
        request = turn.request
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
        turn.outbound = _rebuild(request, masked)
        turn.audit_prompt = [{"role": m.role, "content": audited[f"message[{i}]"]}
                             for i, m in enumerate(request.messages)]
        if request.question is not None:
            turn.audit_prompt.append({"role": "question", "content": audited["question"]})
        if principal.role in self.policy.review.roles:
            turn.review_reasons.append(f"role:{principal.role}")
        if turn.purpose in self.policy.review.purposes:
            turn.review_reasons.append(f"purpose:{turn.purpose}")
        if turn.kind == "ask" and request.passages == [] and not turn.blocked:
            turn.backend_name, turn.info = NO_PASSAGES, self.backend(NO_PASSAGES).info()
        self._meter_of(turn)  # chosen here, off the event loop (it may look for a server's process)
        return turn

    def _route_local(self, turn: Turn, actions: list[tuple[Finding, str, Action]], texts: dict[str, str],
                     scanned: dict[str, list[Finding]]):
        """The request goes to the local backend the policy names instead of the external one."""
        local = self._route_target
        local_info = self.backend(local).info() if local else None
        if local_info is None or not local_info.local:
            kinds = _kinds(f for f, _, a in actions if a == Action.ROUTE_LOCAL)
            turn.blocked = (f"{'・'.join(entity_label(e) for e in kinds)}を含むため外部モデルには送信できず、"
                            f"転送先のローカルモデルも設定されていません。(blocked: no local backend to route to)")
            turn.reason = "blocked:no_local_backend"
            return texts, scanned, actions
        turn.backend_name, turn.info = local, local_info
        hits = self._passages_for(local, turn.hits) if turn.kind == "ask" else turn.hits
        if len(hits) < len(turn.hits):
            # The passages were chosen for the requested backend; the one answering may take fewer
            # (a small local model confused by a second passage).
            from sekisho.answer import build_request

            turn.hits = hits
            turn.request = build_request(turn.question or "", hits)
            texts, scanned = self._scan(turn.request)
        return texts, scanned, self._decide(scanned, True, turn.principal)

    def _scan(self, request: ChatRequest) -> tuple[dict[str, str], dict[str, list[Finding]]]:
        """Every text of `request` by place, and what the recognisers (and, for the prompt, the
        copyright registry) found in each."""
        texts = _texts(request)
        check_text(texts)
        # Each text and the whole conversation joined: a number split across two messages (or a
        # message and a stop string) is read whole. Bounded in size and time: a request that would
        # hold a worker longer is refused (413), not scanned.
        deadline = time.monotonic() + self.settings.guard.scan_budget_s
        scanned = self.policy.registry.scan_many(texts, deadline=deadline)
        if self._registry is not None:
            for where, text in texts.items():
                if where.startswith(("message", "question")):
                    scanned[where] = scanned[where] + list(self._check_prompt(text))
        return texts, scanned

    def _decide(self, scanned: dict[str, list[Finding]], local: bool,
                principal: Principal) -> list[tuple[Finding, str, Action]]:
        return [(f, where, self.policy.action_for(f.entity, local=local, role=principal.role))
                for where, findings in scanned.items() for f in findings]

    # --- the model call -----------------------------------------------------------------------------

    def meter(self, turn: Turn) -> CallMeter:
        """A meter for the turn's model call, kept on the turn for its audit record."""
        turn.meter = self._meter_of(turn)()
        return turn.meter

    def _meter_of(self, turn: Turn) -> Callable[[], CallMeter]:
        """How calls of the turn's backend are metered, chosen once per backend (the path's own
        answerers and tools have no configuration: they run in this process)."""
        name = turn.backend_name
        if name not in self._meters:
            config = self.settings.models.backends.get(name) if name != NO_PASSAGES else None
            self._meters[name] = self.metering.meter_for(turn.info, config)
        return self._meters[name]

    def _call(self, turn: Turn) -> Completion:
        """The model's answer, masks restored for the principal; a failure is recorded, then raised."""
        try:
            if self._reads_apart(turn):
                raw = self.calls.run(turn.backend_name, turn.info, self._read_each, turn, meter=self.meter(turn))
            else:
                raw = self.calls.run(turn.backend_name, turn.info, self.backend(turn.backend_name).complete,
                                     turn.outbound, meter=self.meter(turn))
        except BackendError as exc:
            self._record(turn, "error", extra={"error": str(exc)})
            raise
        return replace(raw, text=turn.session.restore(valid_text(raw.text), turn.principal))

    async def _acall(self, turn: Turn) -> Completion:
        try:
            if self._reads_apart(turn):
                raw = await self.calls.arun(turn.backend_name, turn.info, self._read_each, turn,
                                            meter=self.meter(turn))
            else:
                raw = await self.calls.acomplete(turn.backend_name, turn.info, self.backend(turn.backend_name),
                                                 turn.outbound, meter=self.meter(turn))
        except BackendError as exc:
            await self.off_loop(self._record, turn, "error", extra={"error": str(exc)})
            raise
        except asyncio.CancelledError:
            await asyncio.shield(self.off_loop(self._record, turn, "cancelled", extra={"shown_chars": 0}))
            raise
        return replace(raw, text=turn.session.restore(valid_text(raw.text), turn.principal))

    async def off_loop(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` on the path's thread pool, awaited: blocking work kept off the event loop."""
        # In the caller's context, so the thread sees the request id the server set.
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self.pool, partial(context.run, fn, *args, **kwargs))

    def _reads_apart(self, turn: Turn) -> bool:
        from sekisho.answer.reading import reads_apart

        return (turn.kind == "ask" and reads_apart(self.settings.models.backends.get(turn.backend_name))
                and len(turn.outbound.passages or []) > 1)

    def _read_each(self, turn: Turn) -> Completion:
        """One request per passage (each already masked as the policy says); the turn is narrowed
        to the reading kept, so its citation [1] resolves to that passage, and every reading is
        recorded for the audit. Runs where the model's calls are queued (ModelCalls)."""
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

    # --- concluding: output checks, the answer's support, review, the one record --------------------

    def conclude(self, turn: Turn, completion: Completion, extra: dict[str, Any] | None = None) -> Governed:
        """Everything after the (restored) output exists: output guard, the answer's support check
        for questions, review hold, audit. A model ran, so whatever fails here is recorded first."""
        try:
            return self._conclude(turn, completion, extra)
        except Exception as exc:
            if not turn.recorded:
                self._record(turn, "error", extra={"error": one_line(exc)})
            raise

    def _conclude(self, turn: Turn, completion: Completion, extra: dict[str, Any] | None) -> Governed:
        from sekisho.answer import finish

        self._guard_output(turn, completion.text)
        extra = dict(extra or {})
        if turn.kind != "ask":
            extra["sources"] = _passage_sources(turn.request)
            return self._finish(turn, completion, extra=extra)
        answer = finish(turn.question or "", turn.hits, turn.request, completion)
        report = answer.faithfulness
        turn.review_reasons.extend(self.policy.review.answer_reasons(report, not_found=answer.not_found))
        extra.update({"sources": [_source(h) for h in turn.hits], "not_found": answer.not_found,
                      "faithfulness": {"score": round(report.score, 3),
                                       "unsupported_sentences": len(report.unsupported),
                                       "invalid_citations": list(report.invalid_citations)}})
        return self._finish(turn, completion, extra=extra, answer=answer)

    def _guard_output(self, turn: Turn, text: str) -> None:
        deadline = time.monotonic() + self.settings.guard.scan_budget_s
        turn.output_findings = self.policy.registry.scan(text, deadline=deadline)
        for f in turn.output_findings:
            turn.findings.append(GuardAction(f.entity, "output", f.start, f.end, "flag", f.recognizer, f.score,
                                             turn.session.placeholder(f.entity, f.text)))
            if self.policy.action_for(f.entity, local=turn.local, role=turn.principal.role) == Action.REVIEW:
                turn.review_reasons.append(f"entity:{f.entity}")
        if self._registry is not None:
            similar = self._check_output(text)
            for f in similar:
                turn.findings.append(GuardAction(f.entity, "output", f.start, f.end, "flag", f.recognizer, f.score))
            if similar and self.policy.review.copyright:
                turn.review_reasons.append("copyright")

    def _finish(self, turn: Turn, completion: Completion, *, extra: dict[str, Any], answer: Any = None) -> Governed:
        audited_output = turn.session.mask_known(turn.session.mask(completion.text, turn.output_findings)[0])
        extra = {**extra, "output": audited_output, "finish_reason": completion.finish_reason,
                 "tokens": {"prompt": completion.prompt_tokens, "completion": completion.completion_tokens},
                 "latency_s": round(completion.latency_s, 4)}
        reasons = list(dict.fromkeys(turn.review_reasons))
        if not reasons:
            entry, _ = self._record(turn, "ok", extra=extra)
            return self._outcome(turn, "ok", entry, completion=completion, answer=answer)
        entry, review_id = self._record(turn, "held", extra={**extra, "review_reasons": reasons}, hold=audited_output)
        self._keep_session(review_id, turn.session)
        turn.reason = "held:" + ",".join(reasons)
        return replace(self._outcome(turn, "held", entry, review_id=review_id),
                       message=(f"回答は確認待ちです（レビュー番号 {review_id}）。承認後に表示されます。"
                                f"(held for review, review id {review_id}: {', '.join(reasons)})"))

    def _blocked(self, turn: Turn) -> Governed:
        extra = {"sources": [_source(h) for h in turn.hits]} if turn.kind == "ask" else {}
        entry, _ = self._record(turn, "blocked", extra=extra)
        return self._outcome(turn, "blocked", entry)

    def _outcome(self, turn: Turn, status: str, entry: Any, *, completion: Completion | None = None,
                 answer: Any = None, review_id: int | None = None) -> Governed:
        return Governed(status=status, message=turn.blocked if status == "blocked" else "",  # type: ignore[arg-type]
                        completion=completion, findings=tuple(turn.findings), backend=turn.backend_name,
                        audit_seq=entry.seq, audit_hash=entry.hash, answer=answer, review_id=review_id,
                        requested_backend=turn.requested, reason=turn.reason, energy=self._energy(turn))

    def _record(self, turn: Turn, status: str, *, extra: dict[str, Any], hold: str | None = None) -> tuple[Any, Any]:
        """The turn's one audit record (and, when `hold` is the audited output, its review item in
        the same transaction). Returns (audit entry, review id or None)."""
        if turn.recorded:
            raise RuntimeError(f"request {turn.request_id} is already recorded")
        turn.recorded = True
        record = self._audit_record(turn, status, extra)
        if hold is None:
            written = self.audit.append(turn.kind, record), None
        else:
            reasons = record["review_reasons"]
            written = self.audit.append_with(
                turn.kind, record,
                lambda conn, entry: self.review.hold_in(conn, hold, reasons, turn.principal, entry.seq))
        self._charge_tokens(turn, record)
        return written

    def _charge_tokens(self, turn: Turn, record: dict[str, Any]) -> None:
        """The turn's tokens, charged once its record is written. A quota store that fails here
        must not fail a request the log already holds: the failure is logged and the audit record
        still has the tokens."""
        tokens = record.get("tokens") or {}
        used = int(tokens.get("prompt") or 0) + int(tokens.get("completion") or 0)
        if self._charge is None or used <= 0:
            return
        try:
            self._charge(turn.principal, used)
        except Exception:  # noqa: BLE001 - see the docstring
            log.exception("could not charge %d tokens to %s (request %s)", used, turn.principal.name, turn.request_id)

    def _energy(self, turn: Turn) -> Energy:
        """The energy of the turn's model call; a turn that called no model (blocked) took none."""
        if turn.meter is not None:
            return turn.meter.energy()
        return Energy(0.0, self._meter_of(turn)().source if turn.info is not None else "estimate", NO_CALL)

    def _audit_record(self, turn: Turn, status: str, extra: dict[str, Any]) -> dict[str, Any]:
        info = turn.info
        record: dict[str, Any] = {
            "principal": turn.principal.name,
            "role": str(turn.principal.role),
            # The principal's access tags as they were: usage is counted per tag (audit/usage.py).
            "tags": list(turn.principal.tags),
            "purpose": turn.purpose,
            "status": status,
            "request_id": turn.request_id,
            "backend": {"requested": turn.requested, "used": turn.backend_name,
                        "kind": info.kind if info else "", "model": info.model if info else "",
                        "version": info.version if info else "", "local": info.local if info else None},
            "prompt": [{**m, "content": capped(m["content"])} for m in turn.audit_prompt],
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
        record.update(turn.meta)
        record.update(extra)
        if isinstance(record.get("output"), str):
            record["output"] = capped(record["output"])
        record["energy"] = self._energy(turn).to_json()
        record["duration_s"] = round(time.perf_counter() - turn.started, 4)
        return record

    def _keep_session(self, review_id: int, session: MaskSession) -> None:
        self._held_sessions[review_id] = session
        while len(self._held_sessions) > _KEPT_SESSIONS:
            self._held_sessions.popitem(last=False)

    # --- copyright ----------------------------------------------------------------------------------

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


class LocalTool:
    """A deterministic function of this server behind the Backend protocol (local, no weights)."""

    def __init__(self, name: str, produce: Callable[[ChatRequest], str], version: str) -> None:
        self.name, self._produce, self._version = name, produce, version

    def info(self) -> ModelInfo:
        return ModelInfo(name=self.name, kind="tool", model=self.name, local=True, version=self._version,
                         capabilities=frozenset({Capability.CONCURRENT}))

    def complete(self, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        text = self._produce(request)
        return Completion(text, self.name, 0, 0, latency_s=time.perf_counter() - started)

    def stream(self, request: ChatRequest) -> Iterator[str]:
        yield self.complete(request).text

    def count_tokens(self, text: str) -> int:
        return len(text)

    def check(self) -> None:
        return None


def capped(text: str, limit: int = AUDIT_TEXT_CHARS) -> str:
    """What the audit log keeps of a text: all of it up to `limit` characters, else the head and
    the sha256 of the whole, so the record stays verifiable against the original."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{text[:limit]}…[{len(text) - limit} more characters; sha256 of the whole {digest}]"


def _texts(request: ChatRequest) -> dict[str, str]:
    """Every text of a request that reaches a backend, by place: messages, passages, the question
    and the stop sequences (a stop sequence is forwarded too, so it is scanned and masked too)."""
    texts = {f"message[{i}]": m.content for i, m in enumerate(request.messages)}
    for p in request.passages or ():
        texts[f"passage[{p.n}]"] = p.text
    if request.question is not None:
        texts["question"] = request.question
    for i, stop in enumerate(request.stop or ()):
        texts[f"stop[{i}]"] = stop
    return texts


def _rebuild(request: ChatRequest, masked: dict[str, str]) -> ChatRequest:
    messages = [Message(m.role, masked[f"message[{i}]"]) for i, m in enumerate(request.messages)]
    passages = ([replace(p, text=masked[f"passage[{p.n}]"]) for p in request.passages]
                if request.passages else request.passages)
    question = masked["question"] if request.question is not None else None
    stop = [masked[f"stop[{i}]"] for i in range(len(request.stop))] if request.stop else request.stop
    return replace(request, messages=messages, passages=passages, question=question, stop=stop)


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
    # The document's tags as they were: who may read this record's texts follows from them.
    return {"chunk_id": chunk.id, "doc_id": doc.id, "path": doc.path, "title": doc.title, "tags": list(doc.tags),
            "location": chunk.location.label(), "document_sha256": doc.content_hash,
            "chunk_sha256": sha256_hex(chunk.text.encode("utf-8"))}

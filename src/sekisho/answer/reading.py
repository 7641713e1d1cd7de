"""Reading each passage on its own, for models that a second passage confuses.

Given three passages at once, Qwen2.5-Coder-1.5B lost 0.09 character F1 on JSQuAD questions it
answered from the right one alone; given only the best-scored passage, it loses whatever retrieval
ranked second. Reading each candidate passage in its own request and keeping the answer the model
and the retriever jointly believe in recovers most of both (docs/benchmarks.md, ## Answers):

    score = log P(passage | retrieval)
            + READER_WEIGHT * (log P(answer | passage) - log P(資料に記載がありません | passage))
            + CONTEXT_WEIGHT * (share of the question's terms in the passage sentence holding the answer)
            + TOGETHER_WEIGHT * log P(answer [n] | every candidate passage, numbered)

The reader term is how much more the model believes its answer than a refusal, given that passage
alone: a passage that does not hold the answer leaves the model unsure of what it said. The context
term catches the confident answer of the wrong kind: asked 「第1回国会はいつ？」 of a party's
history, the model reads 「1970年7月の第11回大会で…」 and is as sure of 1970年7月 as it is of
1947年 from 「1947年の第1回国会以降…」; only the second sentence is about 第1回国会. The last term
lets the model compare: when the readings' answers differ, each answer (citing its own passage) is
scored as the reply to one request showing every candidate passage. Only those answers are scored,
nothing is generated from that request, so the confusion that reading them together causes does
not arise. An answer that is itself the refusal is kept only when every reading refused.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sekisho.answer.prompt import Style, request_for_passages
from sekisho.config import BackendConfig
from sekisho.models.protocol import ChatRequest, Completion, Passage, ScoringBackend
from sekisho.text import NOT_FOUND, answer_context, strip_citations

# Candidates: passages scoring at least this share of the best, at most EACH_LIMIT of them. On 120
# JSQuAD questions (k=3) this read 1.7 passages per question; the right one was among them for
# all but 3 (all 3 outside the top 3 anyway).
EACH_SHARE = 0.05
EACH_LIMIT = 3
# Chosen on the first 60 of those questions (plateau from 1.5 to 3), reported on the other 60.
READER_WEIGHT = 2.0
# Chosen on those 120 questions (plateau from 1 to 3), reported on 300 others (docs/benchmarks-history.md,
# ## Answers, session 7).
CONTEXT_WEIGHT = 2.0
# Chosen on those 420 questions (plateau from 1.5 to 2 on both samples), reported on 300 others
# (docs/benchmarks-history.md, ## Answers, session 8).
TOGETHER_WEIGHT = 2.0


def reads_apart(backend: BackendConfig | None) -> bool:
    """Whether `backend` is configured to read each passage in a request of its own."""
    return backend is not None and backend.read_passages == "each"


def passage_policy(backend: BackendConfig | None, min_relative_score: float) -> tuple[float, int | None]:
    """(share of the best score a passage needs, most passages) for what `backend` is given: its
    own limit, and a low share when it reads each passage alone (a weak second passage cannot
    confuse it there)."""
    limit = backend.max_passages if backend is not None else None
    if reads_apart(backend):
        return EACH_SHARE, limit or EACH_LIMIT
    return min_relative_score, limit


@dataclass(frozen=True)
class Reading:
    """One passage read alone: the model's answer and how much it believes it."""

    request: ChatRequest  # the passage as [1], the question
    completion: Completion
    probability: float  # the passage's retrieval score
    answer_logprob: float
    not_found_logprob: float
    context: float = 0.0  # answer_context(): how much the sentence the answer comes from is about the question
    # log P(this answer citing its passage | every candidate passage at once): 0 when the readings
    # agree, for then there is nothing to compare
    together: float = 0.0

    @property
    def refused(self) -> bool:
        return NOT_FOUND in self.completion.text

    @property
    def score(self) -> float:
        reader = self.answer_logprob - self.not_found_logprob
        return (math.log(max(self.probability, 1e-12)) + READER_WEIGHT * reader + CONTEXT_WEIGHT * self.context
                + TOGETHER_WEIGHT * self.together)


def read_each(question: str, passages: Sequence[Passage], probabilities: Sequence[float],
              backend: ScoringBackend, *, max_tokens: int = 512, style: Style = "grounded") -> list[Reading]:
    """Ask `backend` once per passage (each numbered [1] in its own request), then, when the
    answers differ, how likely each is with every passage in view."""
    readings = []
    for passage, probability in zip(passages, probabilities):
        request = request_for_passages(question, [replace(passage, n=1)], style=style, max_tokens=max_tokens)
        completion = backend.complete(request)
        reply = completion.text.strip() or NOT_FOUND
        answer_lp, not_found_lp = backend.choice_logprobs(request, [reply, NOT_FOUND])
        context = answer_context(question, reply, passage.text)
        readings.append(Reading(request, completion, probability, answer_lp, not_found_lp, context))
    return _weighed_together(question, passages, readings, backend, style)


def _weighed_together(question: str, passages: Sequence[Passage], readings: list[Reading],
                      backend: ScoringBackend, style: Style) -> list[Reading]:
    """The readings with `together` set, when their answers differ (the module docstring says why)."""
    answered = [i for i, r in enumerate(readings) if not r.refused]
    # A bare citation ("[1]", which small models write) amounts to a refusal and is scored as one.
    answers = [strip_citations(readings[i].completion.text) or NOT_FOUND for i in answered]
    if len(set(answers)) < 2:
        return readings
    request = request_for_passages(question, passages, style=style)
    logprobs = backend.choice_logprobs(request, [f"{a} [{passages[i].n}]" for a, i in zip(answers, answered)])
    weighed = list(readings)
    for i, logprob in zip(answered, logprobs):
        weighed[i] = replace(readings[i], together=logprob)
    return weighed


def best_reading(readings: Sequence[Reading]) -> int:
    """Index of the reading to keep: the best score among answers, else the best-retrieved refusal."""
    answered = [i for i, r in enumerate(readings) if not r.refused]
    if not answered:
        return 0
    return max(answered, key=lambda i: readings[i].score)


def combined_completion(readings: Sequence[Reading], chosen: int, started: float) -> Completion:
    """The kept reading's answer, with the tokens and time of every reading (what the turn cost)."""
    kept = readings[chosen].completion
    return replace(kept, prompt_tokens=sum(r.completion.prompt_tokens for r in readings),
                   completion_tokens=sum(r.completion.completion_tokens for r in readings),
                   latency_s=time.perf_counter() - started)

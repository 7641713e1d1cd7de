"""Ask the knowledge base: retrieve, prompt, complete, then resolve citations and check support."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from sekisho.answer.citations import Citation, resolve_citations
from sekisho.answer.faithfulness import FaithfulnessReport, check_faithfulness, is_not_found
from sekisho.answer.prompt import build_request, confident_hits
from sekisho.models.protocol import ChatRequest, Completion
from sekisho.store.records import Hit
from sekisho.text import NOT_FOUND


class Searchable(Protocol):
    def search(self, query: str, k: int = 5, tags: Sequence[str] | None = None) -> list[Hit]: ...


Complete = Callable[[ChatRequest], Completion]
Stream = Callable[[ChatRequest], Iterator[str]]


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    citations: list[Citation]  # each valid [n], resolved to its document and place
    hits: list[Hit]  # the retrieved passages, [1]..[k] in order
    completion: Completion
    faithfulness: FaithfulnessReport
    not_found: bool  # the answer is 資料に記載がありません
    invalid_citations: tuple[int, ...] = ()  # [n] that name no retrieved passage (invented)


def finish(question: str, hits: list[Hit], request: ChatRequest, completion: Completion) -> Answer:
    """Everything after the model call: citations resolved, every sentence checked."""
    citations, invalid = resolve_citations(completion.text, hits)
    report = check_faithfulness(completion.text, request.passages or [])
    return Answer(
        question=question,
        text=completion.text,
        citations=citations,
        hits=hits,
        completion=completion,
        faithfulness=report,
        not_found=is_not_found(completion.text),
        invalid_citations=tuple(invalid),
    )


def ask(question: str, *, kb: Searchable, complete: Complete, k: int = 5, tags: Sequence[str] | None = None,
        min_relative_score: float = 0.0, min_score: float = 0.0) -> Answer:
    """Answer `question` from the knowledge base. `complete` is the (governed) model call, so the
    same flow serves the CLI, the API and the gateway. Of the k hits, those scoring under
    `min_relative_score` times the best are left out, and all of them when the best scores under
    `min_score` (confident_hits)."""
    hits = confident_hits(kb.search(question, k=k, tags=tags), min_relative_score, min_score=min_score)
    request = build_request(question, hits)
    return finish(question, hits, request, complete(request) if hits else no_passage_completion())


def no_passage_completion() -> Completion:
    """The answer to a question retrieval found nothing for, without asking a model: with no passage
    whatever it said would come from somewhere other than the documents (Gateway.NO_PASSAGES)."""
    return Completion(text=NOT_FOUND, model="", prompt_tokens=0, completion_tokens=0)


def ask_stream(
    question: str,
    *,
    kb: Searchable,
    stream: Stream,
    model: str,
    count_tokens: Callable[[str], int],
    k: int = 5,
    tags: Sequence[str] | None = None,
    min_relative_score: float = 0.0,
    min_score: float = 0.0,
) -> Iterator[str | Answer]:
    """Like `ask`, but yields the answer's text pieces as the model produces them, then the
    finished `Answer` as the last item."""
    hits = confident_hits(kb.search(question, k=k, tags=tags), min_relative_score, min_score=min_score)
    request = build_request(question, hits)
    started = time.perf_counter()
    pieces: list[str] = []
    for piece in stream(request) if hits else iter([no_passage_completion().text]):
        pieces.append(piece)
        yield piece
    text = "".join(pieces)
    completion = Completion(
        text=text,
        model=model,
        prompt_tokens=sum(count_tokens(m.content) for m in request.messages),
        completion_tokens=count_tokens(text),
        latency_s=time.perf_counter() - started,
    )
    yield finish(question, hits, request, completion)

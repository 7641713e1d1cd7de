"""Grounded, cited answers: the prompt, the call, citation resolution and the faithfulness check.

    answer = ask("住民票の写しはどこで取れますか", kb=kb, complete=backend.complete)
    answer.text, answer.citations, answer.faithfulness.unsupported
"""

from sekisho.answer.ask import Answer, ask, ask_stream, finish, no_passage_completion
from sekisho.answer.citations import Citation, cited_numbers, resolve_citations
from sekisho.answer.faithfulness import FaithfulnessReport, SentenceSupport, check_faithfulness, is_not_found
from sekisho.answer.prompt import SYSTEM_PROMPT, build_request, confident_hits, passages_from_hits, request_for_passages
from sekisho.text import NOT_FOUND

__all__ = [
    "NOT_FOUND",
    "SYSTEM_PROMPT",
    "Answer",
    "Citation",
    "FaithfulnessReport",
    "SentenceSupport",
    "ask",
    "ask_stream",
    "build_request",
    "check_faithfulness",
    "cited_numbers",
    "confident_hits",
    "finish",
    "is_not_found",
    "no_passage_completion",
    "passages_from_hits",
    "request_for_passages",
    "resolve_citations",
]

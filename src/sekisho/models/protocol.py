"""The Backend protocol every model implementation satisfies, and the records it exchanges.

Shaped after the OpenAI chat-completions API so that the gateway is a thin translation, and after
`llm`'s plugin model so that a new backend is one class registered by name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

from sekisho.errors import SekishoError


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Passage:
    """A numbered retrieved passage, given alongside the prompt so that backends which do not
    read prose (the extractive answerer) can still answer from the same evidence."""

    n: int  # the [n] the prompt uses
    chunk_id: str
    title: str
    text: str
    # The heading path the passage stands under (HTML, DOCX and Markdown sections). Its headings
    # are lines of `text` like any other; this says which lines are headings, not sentences.
    headings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChatRequest:
    messages: list[Message]
    max_tokens: int = 512
    temperature: float = 0.0
    stop: list[str] | None = None
    passages: list[Passage] | None = None
    question: str | None = None  # the user's question, when the prompt was built by answer/


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"
    latency_s: float = 0.0


class Capability(StrEnum):
    """What a backend can do beyond `complete` and `stream`, declared in its ModelInfo so that
    callers ask the backend's description, never probe its methods."""

    # Says how likely given replies are without generating (multiple-choice scoring, reading
    # passages apart): the backend implements ScoringBackend.choice_logprobs.
    SCORE_REPLIES = "score_replies"
    # Serves several requests at once (an HTTP server with its own batching or slots). Without it
    # the backend decodes one request at a time and callers queue for it, per model.
    CONCURRENT = "concurrent"
    # Also has `acomplete` and `astream` (AsyncBackend): an event loop awaits the model without
    # holding a thread while it works (remote servers over an async HTTP client).
    ASYNC = "async"
    # Writes free text for any request (a language model). Without it (the extractive answerer)
    # the backend only quotes the passages it is given: condensing a conversation, drafting or
    # translating need a backend that declares this.
    GENERATE = "generate"


@dataclass(frozen=True)
class ModelInfo:
    name: str  # the name the config gives this backend
    kind: str  # "extractive" | "llama.cpp" | "openai"
    model: str  # the underlying model id or file
    local: bool  # True when no data leaves this machine / organisation's premises
    version: str = ""  # e.g. GGUF sha256 prefix or server-reported version
    extra: dict[str, str] = field(default_factory=dict)
    capabilities: frozenset[Capability] = frozenset()

    def can(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "model": self.model, "local": self.local,
                "version": self.version, "extra": dict(self.extra), "capabilities": sorted(self.capabilities)}


class BackendError(SekishoError):
    """A backend could not answer: unreachable, wrong model name, timed out. The message is one
    line a user can act on."""

    http_status = 502
    code = "backend_error"


class Backend(Protocol):
    def info(self) -> ModelInfo: ...

    def complete(self, request: ChatRequest) -> Completion: ...

    def stream(self, request: ChatRequest) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...

    def check(self) -> None:
        """Raise BackendError with a clear reason when the backend cannot serve requests."""


class AsyncBackend(Backend, Protocol):
    """A backend whose info declares Capability.ASYNC."""

    async def acomplete(self, request: ChatRequest) -> Completion: ...

    def astream(self, request: ChatRequest) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


class ScoringBackend(Backend, Protocol):
    """A backend whose info declares Capability.SCORE_REPLIES."""

    def choice_logprobs(self, request: ChatRequest, choices: list[str]) -> list[float]:
        """The log-likelihood of each choice as the assistant's reply to `request`."""

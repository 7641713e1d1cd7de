"""Model backends behind one protocol, chosen by name from the configuration.

    [models.backends.qwen]
    kind = "llama.cpp"
    model = "models/qwen2.5-1.5b-instruct-q4_k_m.gguf"

    backend = open_backend(settings, "qwen")
    backend.complete(ChatRequest([Message("user", "こんにちは")]))

Like `llm`'s plugins, a new kind of backend is one class plus one entry in `BACKEND_KINDS`
(or a `register_backend` call from outside the package). Implementations are imported only when
a backend of their kind is opened, so the optional `llama-cpp-python` is never needed by a
deployment that does not use it.
"""

from __future__ import annotations

from collections.abc import Callable

from sekisho.config import BackendConfig, Settings, resolve_path
from sekisho.models.protocol import (
    Backend,
    BackendError,
    Capability,
    ChatRequest,
    Completion,
    Message,
    ModelInfo,
    Passage,
    ScoringBackend,
)

__all__ = [
    "BACKEND_KINDS",
    "Backend",
    "BackendError",
    "Capability",
    "BackendFactory",
    "ChatRequest",
    "Completion",
    "Message",
    "ModelInfo",
    "Passage",
    "ScoringBackend",
    "backend_names",
    "open_backend",
    "register_backend",
]

# (configured name, its configuration, the whole settings for path resolution) -> backend
BackendFactory = Callable[[str, BackendConfig, Settings], Backend]


def _extractive(name: str, config: BackendConfig, settings: Settings) -> Backend:
    from sekisho.models.extractive import ExtractiveBackend

    return ExtractiveBackend(config)


def _llamacpp(name: str, config: BackendConfig, settings: Settings) -> Backend:
    from sekisho.models.llamacpp import LlamaCppBackend

    if not config.model:
        raise BackendError(f"backend {name!r}: kind 'llama.cpp' needs model = \"path/to/file.gguf\"")
    return LlamaCppBackend(name, config, resolve_path(settings, config.model))


def _openai(name: str, config: BackendConfig, settings: Settings) -> Backend:
    from sekisho.models.openai_http import OpenAIBackend

    return OpenAIBackend(name, config)


BACKEND_KINDS: dict[str, BackendFactory] = {
    "extractive": _extractive,
    "llama.cpp": _llamacpp,
    "openai": _openai,
}


def register_backend(kind: str, factory: BackendFactory) -> None:
    """Make `kind = "<kind>"` usable in the configuration (plugins, tests of other areas)."""
    BACKEND_KINDS[kind] = factory


def backend_names(settings: Settings) -> list[str]:
    """The configured backend names, the default first."""
    names = list(settings.models.backends)
    default = settings.models.default
    return sorted(names, key=lambda n: n != default)


def open_backend(settings: Settings, name: str | None = None) -> Backend:
    """The backend configured under `name` (the configured default when None). Opening is cheap:
    llama.cpp loads its model on first use, HTTP backends connect on first request."""
    name = name or settings.models.default
    config = settings.models.backends.get(name)
    if config is None:
        configured = ", ".join(backend_names(settings)) or "(none)"
        raise BackendError(f"unknown backend {name!r}; configured backends: {configured}")
    factory = BACKEND_KINDS.get(config.kind)
    if factory is None:
        raise BackendError(
            f"backend {name!r} has unknown kind {config.kind!r}; known kinds: {', '.join(BACKEND_KINDS)}"
        )
    return factory(name, config, settings)

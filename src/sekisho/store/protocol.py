"""The Store protocol: everything the rest of sekisho may ask of persistent storage.

SQLite is the embedded default (store/sqlite/); the PostgreSQL store (store/postgres/, pgvector)
implements the same protocol so several servers can share one database. `open_store` picks by
path or URL. Nothing outside store/ writes SQL for documents.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import numpy as np

from sekisho.errors import SekishoError
from sekisho.store.records import Chunk, Document, StoredChunks, Unstaged


class StoreError(SekishoError):
    """The store cannot be opened or used; the message names the store and the reason."""


class EmbedderChanged(StoreError):
    """Vectors made by one embedder offered to a store whose vectors are another's (it switched
    while they were being made): the writer embeds again with the store's embedder."""


class Store(Protocol):
    def document_by_path(self, path: str) -> Document | None: ...

    def document_by_id(self, doc_id: str) -> Document | None: ...

    def documents(self) -> list[Document]: ...

    def document_titles(self, doc_ids: Iterable[str]) -> dict[str, str]:
        """doc id -> title for the ids that exist, without the documents' text."""

    def replace_document(
        self,
        document: Document,
        chunks: Sequence[Chunk],
        lexical_texts: Sequence[str],
        vectors: np.ndarray,
        embedder: str | None = None,
    ) -> None:
        """Atomically replace any document with the same id by this one, its chunks, their
        pre-tokenised lexical text and their embeddings: either all of it lands or none does.
        `embedder` names what made the vectors: recorded on a store without another embedder's
        chunks, EmbedderChanged when the store's vectors are another's."""

    def reindex_lexical(self, lexical_of: Callable[[Document, list[Chunk]], list[str]], scheme: str) -> int:
        """Atomically rewrite every chunk's lexical text and record the scheme (meta
        'lexical_scheme'); returns how many chunks were rewritten."""

    def delete_document(self, doc_id: str) -> None: ...

    def chunks_by_id(self, ids: Iterable[str]) -> list[Chunk]: ...

    def lexical_texts(self, chunk_ids: Iterable[str]) -> dict[str, str]:
        """chunk id -> the pre-tokenised text its BM25 index holds (terms separated by spaces)."""

    def lexical_search(self, terms: Sequence[str], k: int, tags: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """BM25 over the pre-tokenised text for chunks holding any of `terms` (each matched as one
        literal token); returns (chunk id, score), best first. A store may leave out terms too
        common to change the ranking."""

    def vector_search(self, vector: np.ndarray, k: int, tags: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """Nearest chunks by cosine similarity; returns (chunk id, similarity), best first."""

    def stored_chunks(self, doc_id: str) -> StoredChunks:
        """The document's chunks with their lexical texts and vectors, in order (empty if none)."""

    def chunk_count(self) -> int: ...

    def get_meta(self, key: str) -> str | None:
        """A small named setting kept with the data (e.g. which embedder made the vectors)."""

    def set_meta(self, key: str, value: str) -> None: ...

    # -- re-embedding: a staging set of vectors beside the live one (store/staging.py) -----------

    def begin_staging(self, embedder: str) -> None:
        """Make `embedder` the one vectors are staged for (meta 'staging_embedder'); vectors
        staged for another are dropped."""

    def unstaged_chunks(self, limit: int, after: int = 0) -> Unstaged:
        """Up to `limit` chunks without a staged vector whose row key is above `after`, in key order."""

    def stage_vectors(self, embedder: str, batch: Unstaged, vectors: np.ndarray) -> int:
        """Keep `vectors` (made by `embedder`, one per chunk of `batch`) as the chunks' staged
        vectors, durably; a chunk replaced or deleted since the batch was read gets none.
        Returns how many were staged."""

    def staged_count(self) -> int: ...

    def switch_to_staged(self, embedder: str, dim: int) -> bool:
        """In one write transaction, when every chunk has a staged vector for `embedder`: the
        staged vectors replace the live ones and the store records `embedder` and `dim`. False
        (nothing changed) while some chunk has none."""

    def claim(self, name: str, worker: str, lease_s: float) -> tuple[str, float]:
        """Take or renew the claim `name` (e.g. "reembed") for `worker` unless another worker holds
        it unexpired; returns the holder afterwards and until when (epoch seconds)."""

    def release(self, name: str, worker: str) -> None:
        """Give the claim up, if `worker` holds it."""

    def close(self) -> None: ...

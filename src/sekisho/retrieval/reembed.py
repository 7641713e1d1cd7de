"""Re-embedding: moving a store's vectors to the configured embedder while search goes on.

A store never mixes two embedders. When the configured embedder is not the one the store records,
the knowledge base keeps searching with the recorded one (kb.py), and `reembed` embeds every
chunk again with the configured one into the store's staging set (store/staging.py), a batch at
a time. Staged vectors are durable, so an interrupted run resumes where it stopped; chunks
ingested meanwhile get the old embedder's vector (search finds them at once) and are staged like
the rest. When every chunk has a staged vector, the store switches in one write transaction and
every process searching it follows at its next search. One process at a time re-embeds a store:
it holds the claim "reembed", renewed every batch.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sekisho.retrieval.kb import KnowledgeBase, embed_passages, passage_text
from sekisho.store import StoreError

CLAIM = "reembed"
# A crashed re-embedder's claim lapses after this; each batch renews it (a batch of the bundled
# e5-small takes seconds, one of an embedding server less).
LEASE_S = 120.0
# Chunks embedded between two staging writes (and two progress reports), at least.
BATCH = 64


@dataclass(frozen=True)
class Progress:
    searching_with: str  # the embedder the store's live vectors are from
    target: str  # the configured embedder
    staged: int  # chunks with a vector of the target's, staged
    chunks: int

    @property
    def switched(self) -> bool:
        return self.searching_with == self.target

    def line(self) -> str:
        if self.switched:
            return f"the store's {self.chunks} chunks are embedded by {self.target!r}"
        return (f"re-embedding from {self.searching_with!r} to {self.target!r}: {self.staged} of {self.chunks} "
                "chunks staged")


def progress(kb: KnowledgeBase) -> Progress:
    """How far re-embedding the store to the configured embedder is."""
    kb.follow_store()
    staged = kb.store.staged_count() if kb.store.get_meta("staging_embedder") == kb.embedder_name else 0
    return Progress(kb.searching_with, kb.embedder_name, staged, kb.store.chunk_count())


def this_worker() -> str:
    """Who holds the claim: the host and process (so a dead process's claim on this host is taken
    over at once) and a per-call tag (two threads of one process are two claimants)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _gone(worker: str) -> bool:
    """Whether `worker` was a process of this host that no longer runs."""
    host, pid, _ = (worker.split(":") + ["", ""])[:3]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _claim(kb: KnowledgeBase, worker: str) -> None:
    holder, until = kb.store.claim(CLAIM, worker, LEASE_S)
    if holder != worker and _gone(holder):
        kb.store.release(CLAIM, holder)
        holder, until = kb.store.claim(CLAIM, worker, LEASE_S)
    if holder != worker:
        raise StoreError(f"{holder} is re-embedding this store (its claim lapses at "
                         f"{time.strftime('%H:%M:%S', time.localtime(until))} unless renewed); "
                         "`sekisho reembed --status` shows how far it is")


def reembed(kb: KnowledgeBase, *, report: Callable[[Progress], None] | None = None,
            stop: threading.Event | None = None) -> bool:
    """Re-embed the store with the configured embedder and switch it; True once the store records
    the configured embedder, False when `stop` was set first (what is staged stays staged).
    StoreError when another process holds the claim; EmbedderError when the configured embedder
    cannot embed (its server down): rerun later, nothing staged is lost."""
    kb.follow_store()
    if not kb.reembedding:
        return True
    worker = this_worker()
    _claim(kb, worker)
    try:
        embedder = kb.embedder_for(kb.embedder_name)
        kb.store.begin_staging(kb.embedder_name)
        size = max(BATCH, getattr(embedder, "passages_per_call", 0))
        staged, after = kb.store.staged_count(), 0
        while True:
            if stop is not None and stop.is_set():
                return False
            batch = kb.store.unstaged_chunks(size, after)
            if not batch.keys:
                if after:  # at the end: once more from the start (SQLite may reuse a row number)
                    after = 0
                    continue
                if kb.store.switch_to_staged(kb.embedder_name, embedder.dim):
                    break
                continue  # a chunk was written between the last read and the switch
            texts = [passage_text(title, chunk) for title, chunk in zip(batch.titles, batch.chunks, strict=True)]
            staged += kb.store.stage_vectors(kb.embedder_name, batch, embed_passages(embedder, texts))
            after = batch.keys[-1]
            _claim(kb, worker)
            if report is not None:
                report(Progress(kb.searching_with, kb.embedder_name, staged, kb.store.chunk_count()))
    finally:
        kb.store.release(CLAIM, worker)
    kb.follow_store()
    return True

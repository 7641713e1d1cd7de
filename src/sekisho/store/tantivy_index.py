"""A tantivy BM25 index derived from a store: the fast path of lexical_search in both stores
(beside the SQLite file; in each PostgreSQL server's own folder; lexical_index.py keeps it current).

Why a second index: FTS5 scores every chunk that matches any OR'ed query term, so at 100,000 chunks
a question's common terms make it walk most of the index. tantivy's block-max WAND skips the
postings that cannot reach the top k: over every query term it answered in p95 6 ms where FTS5
needed 400 ms (79 ms with its rarest-terms budget), and it ranks with the same BM25 (k1 1.2, b 0.75)
over the same terms (docs/benchmarks-history.md, "BM25 engines at 100k").

The store stays the truth; this index is derived data, rebuilt or caught up from the store whenever
it lags:
- After each commit, `state.json` in the folder names the store (its `store_id`) and the store
  generation the commit reflects, so a reader knows from the folder alone whether it is current.
  It is not a document of the index: one more document would count in BM25's chunk total and
  average length, and the ranking would differ from the store's own BM25. It is replaced
  atomically after the commit and removed before a rebuild, so it never names a generation the
  index content is older than; a reader reads it before and after searching (see `search`).
- The store logs the chunk rowids every write touches (`chunk_changes`, same transaction as the
  write). A sync replays the changes since the index's generation, or rebuilds everything when the
  log does not reach back that far, when the index belongs to another store file, or when it cannot
  be read.
- tantivy allows one writer per index across processes (a lock file). A process that cannot take it
  does not wait: its queries run on FTS5, which is always current, until the index catches up.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import tantivy

# Whitespace-separated terms as the analyser produced them, lower-cased like FTS5's unicode61
# tokenizer folds them, so both engines match the same terms.
_ANALYZER = "sekisho_terms"
# Tag values are prefixed so that no user tag can collide with the marker for "no tag at all".
_UNTAGGED = "untagged"
_TAG_PREFIX = "="
# Which store and generation the latest commit reflects.
_STATE_FILE = "state.json"
# Heap for tantivy's writer; a sync of one document's chunks needs far less, a full rebuild of
# 100k chunks flushes a few segments.
_WRITER_HEAP = 50_000_000


class LexicalIndexError(Exception):
    """The index directory cannot be created or opened (the store then searches with FTS5)."""


class IndexBusy(Exception):
    """Another writer (this process or another) is updating the index right now."""


@dataclass(frozen=True)
class IndexState:
    store_id: str
    generation: int


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("tokens", tokenizer_name=_ANALYZER, index_option="freq")
    builder.add_text_field("tag", tokenizer_name="raw", index_option="basic")
    builder.add_integer_field("rid", stored=True, indexed=True, fast=True)
    return builder.build()


def _tag_values(tags: Iterable[str]) -> list[str]:
    values = [_TAG_PREFIX + t for t in dict.fromkeys(tags)]
    return values or [_UNTAGGED]


class TantivyIndex:
    """One tantivy index directory. Searching is thread-safe; `writing()` is the only way to change
    it and holds tantivy's writer lock for its duration."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._schema = _schema()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._index = self._open()
        except (OSError, ValueError) as exc:
            raise LexicalIndexError(f"{directory}: cannot open the lexical index: {exc}") from None

    def _open(self) -> tantivy.Index:
        try:
            index = tantivy.Index(self._schema, path=str(self.directory), reuse=True)
        except (OSError, ValueError):
            # Written by another schema or a damaged copy: it is derived data, so start over.
            shutil.rmtree(self.directory)
            self.directory.mkdir()
            index = tantivy.Index(self._schema, path=str(self.directory), reuse=True)
        analyzer = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).filter(tantivy.Filter.lowercase()).build()
        index.register_tokenizer(_ANALYZER, analyzer)
        return index

    def state(self) -> IndexState | None:
        """Which store and generation the latest commit reflects (None: never synced, or a
        rebuild under way)."""
        try:
            recorded = json.loads((self.directory / _STATE_FILE).read_text(encoding="utf-8"))
            return IndexState(str(recorded["store_id"]), int(recorded["generation"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged: rebuilt like an index never synced

    def record_state(self, state: IndexState | None) -> None:
        """Only IndexWriter calls this, under the writer lock: after a commit, or None before a rebuild."""
        path = self.directory / _STATE_FILE
        if state is None:
            path.unlink(missing_ok=True)
            return
        written = path.with_name(_STATE_FILE + ".new")
        written.write_text(json.dumps({"store_id": state.store_id, "generation": state.generation}), encoding="utf-8")
        os.replace(written, path)

    def chunk_count(self) -> int:
        """Chunks in the latest commit: `sekisho check` compares it with the store's."""
        self._index.reload()
        return self._index.searcher().num_docs

    def search(self, terms: Sequence[str], k: int, tags: Sequence[str] | None,
               expected: IndexState) -> list[tuple[int, float]] | None:
        """(chunk rowid, BM25) best first, or None when the index does not reflect `expected`
        (the caller then searches the store itself). Tag visibility is the stores': None or "*"
        sees everything, () only untagged chunks, otherwise untagged plus any of the tags.

        The state is read before the searcher is reloaded and again after the search: a commit
        the searcher saw that the first read predates either moved the same store on (newer
        content is still the store's) or, for a rebuild, removed the state first, which the
        second read notices."""
        if self.state() != expected:
            return None
        self._index.reload()
        searcher = self._index.searcher()
        should = [(tantivy.Occur.Should, tantivy.Query.term_query(self._schema, "tokens", t.lower())) for t in terms]
        query = tantivy.Query.boolean_query(should)
        if tags is not None and "*" not in tags:
            visible = tantivy.Query.term_set_query(self._schema, "tag", [_UNTAGGED, *(_TAG_PREFIX + t for t in tags)])
            query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, visible)])
        hits = searcher.search(query, k).hits
        if self.state() != expected:
            return None
        rowids = searcher.fast_field_values("rid", [address for _, address in hits])
        return [(int(rowid), float(score)) for (score, _), rowid in zip(hits, rowids, strict=True)]

    def writing(self) -> IndexWriter:
        """Take the writer lock, or raise IndexBusy at once if someone else holds it."""
        try:
            writer = self._index.writer(heap_size=_WRITER_HEAP, num_threads=1)
        except ValueError as exc:
            if "LockBusy" in str(exc):
                raise IndexBusy(str(self.directory)) from None
            raise LexicalIndexError(f"{self.directory}: cannot write the lexical index: {exc}") from None
        return IndexWriter(self, writer)


class IndexWriter:
    """A batch of changes ending in one commit that also records the new IndexState. Used as a
    context manager: leaving it without `commit` discards the batch and releases the lock."""

    def __init__(self, index: TantivyIndex, writer: tantivy.IndexWriter):
        self._index = index
        self._writer: tantivy.IndexWriter | None = writer

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, *exc) -> None:
        if self._writer is not None:
            self._writer.rollback()
            self._release()

    def _release(self) -> None:
        # Dropping the tantivy writer is what frees the lock file.
        self._writer = None

    @property
    def writer(self) -> tantivy.IndexWriter:
        if self._writer is None:
            raise LexicalIndexError(f"{self._index.directory}: this batch is already committed")
        return self._writer

    def clear(self) -> None:
        """Start over (a rebuild): the state goes first, so no reader trusts what follows."""
        self._index.record_state(None)
        self.writer.delete_all_documents()

    def delete(self, rowids: Iterable[int]) -> None:
        for rowid in rowids:
            self.writer.delete_documents_by_term("rid", rowid)

    def add(self, rowid: int, tokens: str, tags: Iterable[str]) -> None:
        self.writer.add_document(tantivy.Document(rid=rowid, tokens=tokens, tag=_tag_values(tags)))

    def commit(self, state: IndexState) -> None:
        writer = self.writer
        writer.commit()
        self._index.record_state(state)
        # Each commit adds a segment; let the merges it started finish before the writer goes, or
        # short-lived writers would leave the segments (and query cost) growing.
        writer.wait_merging_threads()
        self._release()

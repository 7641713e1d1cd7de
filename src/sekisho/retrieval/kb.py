"""The knowledge base: a store plus the analyser and embedder that index into it and search it.

Hybrid search runs BM25 (over Sudachi terms and character pairs: the store's tantivy index, FTS5
when that is not current) and dense cosine search independently, then fuses the two ranked lists
by reciprocal-rank fusion: score(c) = sum_i w_i / (RRF_K + rank_i(c)). RRF needs no score
calibration between BM25 and cosine, which have incomparable scales.
"""

from __future__ import annotations

import threading
import tomllib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np

from sekisho.config import Settings, lexical_index_folder, resolve_path
from sekisho.retrieval.embed import Embedder, EmbedderError, embedder_named, load_embedder, open_embedder
from sekisho.retrieval.rerank import FEATURES, Rescorer, features, rescore
from sekisho.retrieval.tokenize import Analyzer, analyzer, char_bigrams
from sekisho.store import Chunk, Document, EmbedderChanged, Hit, Store, StoreError, open_store
from sekisho.text import nfkc

Mode = Literal["hybrid", "lexical", "dense"]

MODES: tuple[str, ...] = ("hybrid", "lexical", "dense")

T = TypeVar("T")


@dataclass(frozen=True)
class Fusion:
    """Weighted reciprocal-rank fusion parameters.

    The textbook RRF (k=60, equal weights; Cormack et al. 2009) let the dense list pull correct
    BM25 top hits down on JSQuAD: hybrid R@1 0.846 against 0.930 for these values, which were chosen
    on one half of the JSQuAD articles and measured on the other, with the use-m3 embedder and the
    Sudachi + character-pair BM25 index (docs/benchmarks.md, ## Retrieval). A small k and a triple
    lexical weight keep a BM25 first place unless the dense list agrees on something else, and
    still let dense results fill the ranks BM25 misses."""

    rrf_k: float = 1.0
    lexical_weight: float = 3.0
    dense_weight: float = 1.0
    depth: int = 100  # candidates taken from each list before fusing


# What the BM25 index holds (Analyzer.index_terms). Stores indexed under another scheme are
# re-tokenised when opened (text only, no re-embedding): see KnowledgeBase._upgrade_lexical_index.
LEXICAL_SCHEME = "sudachi-B-normalized+cjk-bigrams"

NO_RESCORING = Rescorer(weights=(0.0,) * len(FEATURES), bias=0.0, depth=0)


@dataclass(frozen=True)
class Fitted:
    """The fusion an embedder's re-scorer was fitted behind, and the re-scorer."""

    fusion: Fusion
    rescorer: Rescorer
    fitted: str  # when, with which command, on what


def load_fitted(path: Path | None = None) -> dict[str, Fitted]:
    """The fitted constants per embedder from `rescorers.toml` beside this module (or `path`),
    checked: every feature has a weight and nothing else does. Where they were fitted and how is
    written in the file."""
    source = path or Path(__file__).with_name("rescorers.toml")
    data = tomllib.loads(source.read_text(encoding="utf-8"))
    fitted: dict[str, Fitted] = {}
    for embedder, table in data.items():
        weights = table.get("weights", {})
        if set(weights) != set(FEATURES):
            missing, extra = set(FEATURES) - set(weights), set(weights) - set(FEATURES)
            raise ValueError(f"{source}: [{embedder}.weights]: missing {sorted(missing)}, unknown {sorted(extra)}")
        fitted[embedder] = Fitted(
            fusion=Fusion(**table["fusion"]),
            rescorer=Rescorer(weights=tuple(float(weights[f]) for f in FEATURES), bias=float(table["bias"]),
                              depth=int(table["depth"])),
            fitted=str(table.get("fitted", "")))
    return fitted


FITTED = load_fitted()

# Passages embedded per call while indexing (e5-small: about 0.6 s of two cores for 8).
EMBED_BATCH = 8

A_PRIORI = Fusion(rrf_k=60.0, lexical_weight=1.0, dense_weight=1.0)


@dataclass(frozen=True)
class Candidates:
    terms: list[str]  # the query's index terms
    lexical: list[tuple[str, float]]  # (chunk id, BM25), best first
    dense: list[tuple[str, float]]  # (chunk id, cosine), best first


def passage_text(title: str, chunk: Chunk) -> str:
    """What gets indexed for a chunk: its text preceded by the document title and heading path,
    so a chunk that never repeats its subject ("the fee is 300 yen") is still found by it."""
    context = [title, *chunk.location.heading]
    prefix = " / ".join(p for p in context if p)
    body = chunk.norm_text
    return f"{nfkc(prefix)}\n{body}" if prefix else body


class KnowledgeBase:
    def __init__(self, store: Store, embedder_name: str, *, analyzer_: Analyzer | None = None,
                 fusion: Fusion | None = None, rescorer: Rescorer | None = None, rescoring: bool = True,
                 query_cache: int = 1024, embedder: Callable[[], Embedder] | None = None,
                 embedder_named: Callable[[str], Embedder] | None = None):
        """`rescoring=False` ranks by fusion alone, for corpora unlike the Wikipedia the re-scorer
        was fitted on (see rescorers.toml). `embedder` makes the embedder named `embedder_name`
        (default: the bundled one of that name), on first use.

        `embedder_name` is the configured embedder. A store whose vectors another embedder made
        keeps being searched with that one (`embedder_named(name)` makes it; default: the bundled
        one) until re-embedding (reembed.py) switches the store, and then with the configured one:
        queries are always embedded by the embedder the store records (`searching_with`)."""
        self.store = store
        self.embedder_name = embedder_name
        self._make_embedder = embedder or (lambda: load_embedder(embedder_name))
        self._make_named = embedder_named or load_embedder
        self.analyzer = analyzer_ or analyzer()
        self._fusion_given, self._rescorer_given, self._rescoring = fusion, rescorer, rescoring
        self._embedders: dict[str, Embedder] = {}
        self._embedder_lock = threading.Lock()
        self.query_cache = query_cache
        self._query_vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._use(self._recorded_embedder() or embedder_name)
        self._upgrade_lexical_index()

    @property
    def scores_are_probabilities(self) -> bool:
        """Whether hybrid Hit.score is the re-scorer's calibrated probability that the passage is
        the one sought (comparable across queries), rather than a fused rank score."""
        return self.rescorer.depth > 0

    def _recorded_embedder(self) -> str | None:
        """The embedder that made the store's vectors; None when the store holds none (a new
        store takes the configured one)."""
        stored = self.store.get_meta("embedder")
        return stored if stored and self.store.chunk_count() else None

    def _use(self, name: str) -> None:
        """Search with embedder `name`, behind the fusion and re-scorer fitted for it."""
        fitted = FITTED.get(name) if self._rescoring else None
        self.fusion = self._fusion_given or (fitted.fusion if fitted else Fusion())
        self.rescorer = self._rescorer_given or (fitted.rescorer if fitted else NO_RESCORING)
        self.searching_with = name

    def follow_store(self) -> None:
        """Notice a switch of the store's embedder (re-embedding, maybe by another process):
        one meta read per search, so no query is embedded for vectors the store no longer holds."""
        stored = self.store.get_meta("embedder")
        if stored and stored != self.searching_with:
            recorded = self._recorded_embedder()
            if recorded and recorded != self.searching_with:
                self._use(recorded)

    @property
    def reembedding(self) -> bool:
        """Whether the store's vectors are another embedder's than the configured one."""
        return self.searching_with != self.embedder_name

    def _upgrade_lexical_index(self) -> None:
        """A store written before the current lexical scheme (e.g. Sudachi terms only) gets its
        BM25 text rebuilt from the stored chunks in one transaction; a new store just records it."""
        if self.store.get_meta("lexical_scheme") == LEXICAL_SCHEME:
            return
        self.store.reindex_lexical(
            lambda document, chunks: [self._lexical_text(passage_text(document.title, c)) for c in chunks],
            LEXICAL_SCHEME,
        )

    def _lexical_text(self, passage: str) -> str:
        return " ".join(self.analyzer.index_terms(passage))

    @property
    def embedder(self) -> Embedder:
        """The embedder the store's vectors were made with (`searching_with`). Loaded on first
        use: listing or deleting documents never pays for model weights."""
        return self.embedder_for(self.searching_with)

    def embedder_for(self, name: str) -> Embedder:
        """The embedder `name`, made once: the configured one, or the one a store not yet
        re-embedded still searches with."""
        if name not in self._embedders:
            with self._embedder_lock:
                if name not in self._embedders:
                    self._embedders[name] = self._make_embedder() if name == self.embedder_name else \
                        self._old_embedder(name, lambda: self._make_named(name))
        return self._embedders[name]

    def _old_embedder(self, name: str, make: Callable[[], T]) -> T:
        """`make()`'s result, or the one line that says why the store cannot be searched with
        `name`, the embedder it holds vectors of until it is re-embedded, and what to do."""
        try:
            return make()
        except EmbedderError as exc:
            raise EmbedderError(
                f"the store's vectors were made by {name!r} and {self.embedder_name!r} is configured; until the "
                f"store is re-embedded it is searched with {name!r}, which cannot be used ({exc}): run `sekisho "
                f"reembed` to switch it to {self.embedder_name!r}, or configure {name!r} again") from None

    def _embed(self, name: str, call: Callable[[], np.ndarray]) -> np.ndarray:
        """An embedding by `name`; by an embedder not the configured one, its failure says what to do."""
        return call() if name == self.embedder_name else self._old_embedder(name, call)

    # -- writing ---------------------------------------------------------------------------------

    def index(self, document: Document, chunks: Sequence[Chunk]) -> None:
        """Tokenise and embed the chunks with the store's embedder, then replace the document in
        one store transaction. While the store is re-embedded that is the old embedder (search
        finds the document at once) and the re-embedder stages the new one's vector later."""
        texts = [passage_text(document.title, c) for c in chunks]
        lexical = [self._lexical_text(t) for t in texts]
        self.follow_store()
        try:
            self._write(document, chunks, texts, lexical)
        except EmbedderChanged:
            # The store switched embedders while these vectors were made: made again, once.
            self.follow_store()
            self._write(document, chunks, texts, lexical)

    def _write(self, document: Document, chunks: Sequence[Chunk], texts: list[str], lexical: list[str]) -> None:
        name = self.searching_with
        embedder = self.embedder_for(name)
        vectors = self._embed(name, lambda: embed_passages(embedder, texts))
        # The store records the embedder with the vectors (and refuses another's), so a store is
        # never searched with another embedder.
        self.store.replace_document(document, chunks, lexical, vectors, embedder=name)

    def delete(self, doc_id: str) -> None:
        self.store.delete_document(doc_id)

    # -- searching -------------------------------------------------------------------------------

    def candidates(self, query: str, *, depth: int | None = None, tags: Sequence[str] | None = None,
                   mode: Mode = "hybrid") -> Candidates:
        """The two ranked lists hybrid search fuses, before fusion (benchmarks tune fusion on them)."""
        if mode not in MODES:
            raise ValueError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
        depth = depth or self.fusion.depth
        query = nfkc(query).strip()
        terms = self.analyzer.tokenize(query) if query else []
        # One list after the other: the query embedding and the dense product each keep every core
        # busy already, and a BM25 thread beside them stalls the embedder's OpenMP barriers
        # (hybrid p50 37 -> 34 ms at 100k chunks, docs/benchmarks.md).
        lexical: list[tuple[str, float]] = []
        if mode in ("hybrid", "lexical") and terms:
            # Character pairs rank candidates for fusion; an explicit lexical search stays a
            # whole-word search (水曜日 must not find 月曜日 through their shared 曜日).
            pairs = char_bigrams(query) if mode == "hybrid" else []
            lexical = self.store.lexical_search(terms + pairs, depth, tags)
        dense = self._dense(query, depth, tags) if mode in ("hybrid", "dense") and query else []
        return Candidates(terms, lexical, dense)

    def _dense(self, query: str, depth: int, tags: Sequence[str] | None) -> list[tuple[str, float]]:
        vector, used = self.query_vector(query), self.searching_with
        try:
            return self.store.vector_search(vector, depth, tags)
        except StoreError:
            # The store switched embedders between this query's embedding and its search (another
            # process finished re-embedding): the query is embedded again for the new vectors.
            self.follow_store()
            if self.searching_with == used:
                raise
            return self.store.vector_search(self.query_vector(query), depth, tags)

    def query_vector(self, query: str) -> np.ndarray:
        """The query's embedding, computed once per distinct (NFKC) query while it stays among the
        `query_cache` most recently asked: the embedding is most of a search's cost (about 20 ms
        of two cores' time with e5-small), and staff ask the same questions."""
        self.follow_store()
        name = self.searching_with
        embedder = self.embedder_for(name)
        if self.query_cache <= 0:
            return self._embed(name, lambda: embedder.embed_queries([query]))[0]
        key = (name, query)  # after a switch of embedders the old one's vectors go unused
        with self._cache_lock:
            vector = self._query_vectors.get(key)
            if vector is not None:
                self._query_vectors.move_to_end(key)
                return vector
        vector = self._embed(name, lambda: embedder.embed_queries([query]))[0]
        vector.setflags(write=False)  # shared by every caller that asks the same question
        with self._cache_lock:
            self._query_vectors[key] = vector
            while len(self._query_vectors) > self.query_cache:
                self._query_vectors.popitem(last=False)
        return vector

    def search(self, query: str, k: int = 5, tags: Sequence[str] | None = None, mode: Mode = "hybrid",
               min_score: float = 0.0) -> list[Hit]:
        """The k best chunks for `query` that a principal with `tags` may see (None: no filter).

        Hit.score is, in hybrid mode, the second-stage probability for the re-scored head (the
        fused RRF score when the embedder has no rescorer); BM25 in lexical mode, cosine in dense.
        `min_score` leaves out hybrid hits less likely than that to be what was sought, so a search
        for something the documents do not hold is not padded with near-zero hits; it applies only
        when scores are probabilities."""
        if k <= 0:
            return []
        found = self.candidates(query, depth=max(self.fusion.depth, k), tags=tags, mode=mode)
        if mode == "lexical":
            ranked = found.lexical[:k]
        elif mode == "dense":
            ranked = found.dense[:k]
        else:
            ranked = self.rescored(query, found, fuse(found.lexical, found.dense, self.fusion))[:k]
            if self.scores_are_probabilities:
                ranked = [(cid, score) for cid, score in ranked if score >= min_score]
        return self._hits(ranked, found.lexical, found.dense, found.terms)

    def rescored(self, query: str, found: Candidates, fused: list[tuple[str, float]],
                 rescorer: Rescorer | None = None) -> list[tuple[str, float]]:
        """The fused list with its head re-ordered by the second-stage model (rerank.py)."""
        rescorer = rescorer or self.rescorer
        if not rescorer.depth or not fused:
            return fused
        head = fused[: rescorer.depth]
        matrix = features(nfkc(query), found.terms, head, found.lexical, found.dense,
                          self.passages([cid for cid, _ in head]))
        return rescore(rescorer, fused, matrix)

    def passages(self, chunk_ids: Sequence[str]) -> dict[str, str]:
        """chunk id -> the text indexed for it (title, headings, body)."""
        chunks = self.store.chunks_by_id(chunk_ids)
        titles = self.store.document_titles(c.doc_id for c in chunks)
        return {c.id: passage_text(titles.get(c.doc_id, ""), c) for c in chunks}

    def _hits(self, ranked, lexical, dense, terms: list[str]) -> list[Hit]:
        lexical_rank = {cid: i for i, (cid, _) in enumerate(lexical, 1)}
        dense_rank = {cid: i for i, (cid, _) in enumerate(dense, 1)}
        chunks = {c.id: c for c in self.store.chunks_by_id([cid for cid, _ in ranked])}
        # The terms each chunk was indexed under, as stored: analysing every hit again cost more
        # than the whole BM25 search at 100k chunks.
        indexed = self.store.lexical_texts(chunks)
        documents: dict[str, Document | None] = {}
        query_terms = dict.fromkeys(terms)
        hits = []
        for cid, score in ranked:
            chunk = chunks.get(cid)
            if chunk is None:  # deleted between the index lookup and now
                continue
            if chunk.doc_id not in documents:
                documents[chunk.doc_id] = self.store.document_by_id(chunk.doc_id)
            document = documents[chunk.doc_id]
            if document is None:
                continue
            chunk_terms = set(indexed.get(cid, "").split())
            matched = tuple(t for t in query_terms if t in chunk_terms)
            hits.append(Hit(
                chunk=chunk, document=document, score=score, rank=len(hits) + 1,
                lexical_rank=lexical_rank.get(cid), dense_rank=dense_rank.get(cid), matched_terms=matched,
            ))
        return hits

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def embed_passages(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Passages embedded a few per call: the embedder runs one call at a time, and a question
    arriving while a long document is indexed waits for one small batch, not for the whole
    document. An embedding server takes larger calls: it batches and runs them concurrently itself."""
    step = getattr(embedder, "passages_per_call", EMBED_BATCH)
    batches = [embedder.embed_passages(texts[i:i + step]) for i in range(0, len(texts), step)]
    return np.concatenate(batches) if batches else np.empty((0, embedder.dim), dtype=np.float32)


def fuse(lexical: Sequence[tuple[str, float]], dense: Sequence[tuple[str, float]], fusion: Fusion) -> list[tuple[str, float]]:
    """Weighted reciprocal-rank fusion of two best-first lists; ties keep lexical order first."""
    scores: dict[str, float] = {}
    for weight, ranked in ((fusion.lexical_weight, lexical), (fusion.dense_weight, dense)):
        for rank, (cid, _) in enumerate(ranked, 1):
            scores[cid] = scores.get(cid, 0.0) + weight / (fusion.rrf_k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


def store_target(settings: Settings) -> str | Path:
    """Where the configured store is: `[store] url` (PostgreSQL) when set, else the file at `path`."""
    return settings.store.url or resolve_path(settings, settings.store.path)


def open_knowledge_base(settings: Settings, *, fusion: Fusion | None = None) -> KnowledgeBase:
    """The knowledge base configured by `settings` (store file or PostgreSQL URL, embedder)."""
    store = open_store(store_target(settings), lexical_index=lexical_index_folder(settings))
    retrieval = settings.retrieval
    try:
        return KnowledgeBase(store, retrieval.embedder_name, fusion=fusion, rescoring=retrieval.rescore,
                             query_cache=retrieval.query_cache, embedder=lambda: open_embedder(retrieval),
                             embedder_named=lambda name: embedder_named(name, retrieval))
    except BaseException:
        store.close()
        raise

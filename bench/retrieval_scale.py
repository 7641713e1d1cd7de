"""Search latency and memory with 100,000+ chunks in the store.

What is in the store
- Every distinct JSQuAD paragraph, ingested for real through `sekisho.ingest.ingest_text` (real
  Sudachi terms, real embeddings); its throughput is reported.
- Filler chunks up to --chunks: each is 2-5 sentences (split at 。) drawn at random (seeded) from
  different JSQuAD paragraphs, titled 合成文書 <n>, 100 chunks per filler document. Their BM25 terms
  are real: each distinct sentence is analysed once by the product's analyser, and the chunk's terms
  are the title's and its sentences' Sudachi terms plus the character pairs of title and text, as
  the product indexes them. Their vectors are NOT computed by the model (embedding 100k chunks with
  the shipped model on two shared cores would take hours): a filler vector is the normalised mean
  of the real vectors of the paragraphs its sentences came from, plus Gaussian noise, so filler sits
  in the same region of the space as real passages and competes with them for the top ranks.
  Brute-force dense search costs the same whatever the values are.

Then JSQuAD questions search the whole store through `kb.search` (hybrid, k=5; query embedding
included); reported: latency p50/p95 for hybrid, lexical-only and dense-only, for hybrid again on
the same file without its tantivy index (FTS5 with the shipped rarest-terms budget, and with every
query term: the baselines, same process), and for the query embedding alone; Recall@1/5 of the gold
paragraph among the distractors; the process's peak RSS.

    python bench/retrieval_scale.py [DATASET] [--chunks 100000] [--queries 300] [--store PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval_common import DEFAULT_JSQUAD, dedupe, fmt, load_jsquad, max_rss_mb, metrics, percentile  # noqa: E402
from sekisho.config import RetrievalConfig, Settings, StoreConfig  # noqa: E402
from sekisho.ingest import ingest_text  # noqa: E402
from sekisho.retrieval import open_knowledge_base  # noqa: E402
from sekisho.retrieval.tokenize import char_bigrams  # noqa: E402
from sekisho.store import Chunk, Document, Location  # noqa: E402
from sekisho.store.sqlite import SQLiteStore  # noqa: E402

FILLER_CHUNKS_PER_DOC = 100


def sentences_of(text: str) -> list[str]:
    parts = [s + "。" for s in text.split("。") if s.strip()]
    return [p for p in parts if len(p) > 8]


def add_filler(kb, paragraphs, target_chunks: int, rng: random.Random, np_rng) -> int:
    """Add filler documents until the store holds target_chunks chunks; returns how many added."""
    if kb.store.chunk_count() >= target_chunks:
        return 0
    # Real vectors of the ingested paragraphs (first chunk of each), as the store keeps them.
    pool = []  # (sentence, vector of the paragraph it came from)
    for p in paragraphs:
        doc = kb.store.document_by_path(p.path)
        stored = kb.store.stored_chunks(doc.id) if doc is not None else None
        if stored is not None and len(stored.vectors):
            pool += [(s, stored.vectors[0]) for s in sentences_of(p.body)]
    terms_of_sentence: dict[str, str] = {}
    dim = len(pool[0][1])
    added = 0
    doc_no = 0
    while kb.store.chunk_count() < target_chunks:
        doc_no += 1
        n = min(FILLER_CHUNKS_PER_DOC, target_chunks - kb.store.chunk_count())
        doc_id = f"filler-{doc_no:06d}"
        title = f"合成文書 {doc_no}"
        title_terms = " ".join(kb.analyzer.tokenize(title))
        chunks, lexical, vectors, pieces, pos = [], [], [], [], 0
        for i in range(n):
            picked = rng.sample(pool, rng.randint(2, 5))
            text = "".join(s for s, _ in picked)
            for s, _ in picked:
                if s not in terms_of_sentence:
                    terms_of_sentence[s] = " ".join(kb.analyzer.tokenize(unicodedata.normalize("NFKC", s)))
            # What KnowledgeBase.index would store (Analyzer.index_terms of title + text), with
            # the Sudachi part assembled from per-sentence results to keep filler fast.
            norm = unicodedata.normalize("NFKC", text)
            lexical.append(" ".join([title_terms, *(terms_of_sentence[s] for s, _ in picked),
                                     *char_bigrams(f"{title}\n{norm}")]))
            mean = np.mean([v for _, v in picked], axis=0) + np_rng.normal(scale=0.5 / np.sqrt(dim), size=dim)
            vectors.append(mean / np.linalg.norm(mean))
            chunks.append(Chunk(id=f"{doc_id}:{i}", doc_id=doc_id, ordinal=i, text=text,
                                norm_text=unicodedata.normalize("NFKC", text), location=Location(pos, pos + len(text))))
            pieces.append(text)
            pos += len(text)
        document = Document(id=doc_id, path=f"filler/{doc_no:06d}.txt", title=title,
                            content_hash=str(doc_no), media_type="text/plain", encoding=None, text="".join(pieces))
        kb.store.replace_document(document, chunks, lexical, np.asarray(vectors, dtype=np.float32))
        added += n
        if doc_no % 100 == 0:
            print(f"  filler: {kb.store.chunk_count()} chunks", flush=True)
    return added


def timed_search(kb, questions, mode):
    latencies, rankings = [], []
    for q in questions:
        t = time.perf_counter()
        hits = kb.search(q.text, k=10, mode=mode)
        latencies.append(1000 * (time.perf_counter() - t))
        rankings.append(dedupe([h.document.path for h in hits]))
    return latencies, rankings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?", default=str(DEFAULT_JSQUAD))
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--embedder", default=RetrievalConfig().embedder)
    ap.add_argument("--store", help="keep the store in this file (re-runs reuse it)")
    args = ap.parse_args()
    paragraphs, questions = load_jsquad(Path(args.dataset))
    rng, np_rng = random.Random(7), np.random.default_rng(7)
    sample = rng.sample(questions, min(args.queries + 20, len(questions)))
    questions, warm_up = sample[:args.queries], sample[args.queries:]
    tmp = tempfile.TemporaryDirectory()
    store_path = Path(args.store).resolve() if args.store else Path(tmp.name) / "scale.db"
    settings = Settings(store=StoreConfig(path=str(store_path)), retrieval=RetrievalConfig(embedder=args.embedder),
                        base_dir=tmp.name)
    kb = open_knowledge_base(settings)
    kb.embedder.embed_queries(["warm-up"])

    before = kb.store.chunk_count()
    t0 = time.perf_counter()
    for p in paragraphs:
        ingest_text(kb, path=p.path, title=p.title, text=p.body)
    ingest_s = time.perf_counter() - t0
    real_new = kb.store.chunk_count() - before
    if real_new:
        print(f"real ingest: {real_new} chunks in {ingest_s:.1f} s = {real_new / ingest_s:.1f} chunks/s")
    t0 = time.perf_counter()
    added = add_filler(kb, paragraphs, args.chunks, rng, np_rng)
    if added:
        print(f"filler: {added} chunks in {time.perf_counter() - t0:.1f} s")
    total = kb.store.chunk_count()
    rss_before_search = max_rss_mb()
    t0 = time.perf_counter()
    kb.search("ウォームアップ", k=1)  # loads the vector matrix
    load_s = time.perf_counter() - t0
    index_dir = store_path.with_name(store_path.name + ".lexical")
    index_mb = sum(f.stat().st_size for f in index_dir.iterdir()) / 2**20 if index_dir.is_dir() else 0.0
    print(f"store: {total} chunks, {store_path.stat().st_size / 2**20:.0f} MB on disk + tantivy index "
          f"{index_mb:.0f} MB; first search (loads vectors, catches the index up) {load_s:.1f} s")

    report = {}
    golds = [q.gold for q in questions]
    timed_search(kb, warm_up, "hybrid")  # other questions: warm the caches, not on the measured terms
    shipped = kb.store

    def run(name, mode):
        latencies, rankings = timed_search(kb, questions, mode)
        m = metrics(rankings, golds)
        report[name] = {"p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
                        "R@1": m["R@1"], "R@5": m["R@5"]}
        print(f"{name:26s} p50 {report[name]['p50_ms']:.1f} ms  p95 {report[name]['p95_ms']:.1f} ms  "
              f"{fmt({'R@1': m['R@1'], 'R@5': m['R@5']})}")

    print(f"tantivy index current: {shipped.lexical_index_current()}")
    for mode in ("hybrid", "lexical", "dense"):
        run(mode, mode)
    rss = max_rss_mb()  # before the comparison reload below holds a second copy of the vectors
    # A write, then the next search, which catches the vector matrix and the tantivy index up on
    # the change log; against it, what a full reload of the matrix costs.
    t0 = time.perf_counter()
    shipped.vectors._load_vectors()  # noqa: SLF001 - timed for comparison only
    full_reload_s = time.perf_counter() - t0
    after_write, written = [], []
    for i, q in enumerate(questions[:10]):
        written.append(ingest_text(kb, path=f"after-write/{i}.txt", title="追記文書", text=paragraphs[i].body).id)
        t0 = time.perf_counter()
        kb.search(q.text, k=10)
        after_write.append(1000 * (time.perf_counter() - t0))
    for doc_id in written:
        kb.delete(doc_id)
    kb.search("ウォームアップ", k=1)
    report["first search after a write"] = {"p50_ms": percentile(after_write, 50), "max_ms": max(after_write),
                                            "full_vector_reload_ms": 1000 * full_reload_s}
    print(f"{'first search after a write':26s} p50 {percentile(after_write, 50):.1f} ms  max {max(after_write):.1f} ms"
          f"  (a full reload of the vectors: {1000 * full_reload_s:.0f} ms)")
    # The baselines: the same file without its tantivy index, FTS5 with the shipped rarest-terms
    # budget and with every query term.
    kb.store = fts5 = SQLiteStore(store_path, lexical_index=False)
    timed_search(kb, warm_up, "hybrid")
    run("hybrid, FTS5", "hybrid")
    fts5.lexical.postings_budget = float("inf")
    run("hybrid, FTS5 every term", "hybrid")
    kb.store = shipped
    fts5.close()
    embed_ms = []
    for q in questions:
        t = time.perf_counter()
        kb.embedder.embed_queries([q.text])
        embed_ms.append(1000 * (time.perf_counter() - t))
    report["query embedding alone"] = {"p50_ms": percentile(embed_ms, 50), "p95_ms": percentile(embed_ms, 95)}
    print(f"{'query embedding alone':26s} p50 {percentile(embed_ms, 50):.1f} ms  p95 {percentile(embed_ms, 95):.1f} ms")
    print(f"peak RSS {rss:.0f} MB (before the first search {rss_before_search:.0f} MB)")
    kb.close()
    tmp.cleanup()
    print(json.dumps({"bench": "retrieval_scale", "chunks": total, "queries": len(questions),
                      "embedder": args.embedder,
                      "real_ingest_chunks_per_s": (real_new / ingest_s) if real_new else None,
                      "latency": report, "peak_rss_mb": rss, "first_search_s": load_s,
                      "tantivy_index_mb": index_mb}, ensure_ascii=False))


if __name__ == "__main__":
    main()

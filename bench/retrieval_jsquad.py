"""Open-domain retrieval on JSQuAD: lexical, dense and hybrid search against the naive baseline.

Every distinct paragraph is ingested as a document through `sekisho.ingest.ingest_text` (title =
text before ' [SEP] ', body after; chunked as the product chunks), then every question searches
the whole corpus. A question scores when its gold paragraph's document appears in the top-k
distinct documents. Reported: Recall@1/5/10 and MRR@10 for the naive character-bigram BM25
baseline, lexical (Sudachi BM25), dense, and hybrid (RRF) with the textbook fusion (k=60,
equal weights) and with the product's default fusion, on all questions; then fusion tuned on one
half of the articles and reported on the other half (the product default was chosen this way);
ingest throughput; query latency of the full `kb.search` (p50/p95).

    python bench/retrieval_jsquad.py [DATASET] [--limit N] [--embedder e5-small|use-m3] [--store PATH]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval_common import (  # noqa: E402
    DEFAULT_JSQUAD,
    bigrams,
    dedupe,
    fmt,
    halves,
    load_jsquad,
    max_rss_mb,
    metrics,
    percentile,
)
from sekisho.config import RetrievalConfig, Settings, StoreConfig  # noqa: E402
from sekisho.ingest import ingest_text  # noqa: E402
from sekisho.retrieval import Fusion, fuse, open_knowledge_base  # noqa: E402
from sekisho.retrieval.kb import A_PRIORI  # noqa: E402
from sekisho.retrieval.rerank import FEATURES, Rescorer, features, fit_listwise, rescore  # noqa: E402
from sekisho.store import Chunk, Document, Location, open_store  # noqa: E402

DEPTH = 100  # candidates per list, as in the product's default Fusion
RESCORE_DEPTH = 30


def bigram_rankings(paragraphs, questions, workdir: Path) -> list[list[str]]:
    store = open_store(workdir / "bigram.db")
    store.lexical.postings_budget = float("inf")  # naive: every query pair is searched
    for p in paragraphs:
        text = f"{p.title}\n{p.body}"
        doc = Document(id=p.path, path=p.path, title=p.title, content_hash="", media_type="text/plain",
                       encoding=None, text=text)
        chunk = Chunk(id=p.path + ":0", doc_id=p.path, ordinal=0, text=text, norm_text=text,
                      location=Location(0, len(text)))
        store.replace_document(doc, [chunk], [" ".join(bigrams(text))], np.zeros((1, 1), dtype=np.float32))
    rankings = [[cid.rsplit(":", 1)[0] for cid, _ in store.lexical_search(bigrams(q.text), 10)]
                for q in questions]
    store.close()
    return rankings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?", default=str(DEFAULT_JSQUAD))
    ap.add_argument("--limit", type=int, default=0, help="use only the first N questions")
    ap.add_argument("--embedder", default=RetrievalConfig().embedder)
    ap.add_argument("--store", help="keep the index in this file (re-runs skip unchanged paragraphs)")
    ap.add_argument("--no-ingest", action="store_true",
                    help="search the --store as it is (skip even the unchanged-paragraph check)")
    ap.add_argument("--latency-every", type=int, default=4, help="time kb.search on every Nth question")
    args = ap.parse_args()

    paragraphs, questions = load_jsquad(Path(args.dataset))
    if args.limit:
        questions = questions[: args.limit]
    golds = [q.gold for q in questions]
    tmp = tempfile.TemporaryDirectory()
    store_path = Path(args.store).resolve() if args.store else Path(tmp.name) / "kb.db"
    settings = Settings(store=StoreConfig(path=str(store_path)),
                        retrieval=RetrievalConfig(embedder=args.embedder), base_dir=tmp.name)
    print(f"{len(paragraphs)} paragraphs, {len(questions)} questions, embedder {args.embedder}")

    kb = open_knowledge_base(settings)
    kb.embedder.embed_queries(["warm-up"])  # load the weights outside the timed sections
    chunks_before = kb.store.chunk_count()
    t0 = time.perf_counter()
    for p in [] if args.no_ingest else paragraphs:
        ingest_text(kb, path=p.path, title=p.title, text=p.body)
    ingest_s = time.perf_counter() - t0
    chunks = kb.store.chunk_count()
    new_chunks = chunks - chunks_before
    print(f"ingest: {chunks} chunks ({new_chunks} new) in {ingest_s:.1f} s"
          + (f" = {new_chunks / ingest_s:.1f} chunks/s" if new_chunks else " (reused index)"))

    t0 = time.perf_counter()
    baseline = bigram_rankings(paragraphs, questions, Path(tmp.name))
    print(f"char-bigram baseline indexed and queried in {time.perf_counter() - t0:.1f} s")

    path_of = {}  # chunk id -> document path

    def doc_paths(ranked: list[tuple[str, float]]) -> list[str]:
        missing = [cid for cid, _ in ranked if cid not in path_of]
        for c in kb.store.chunks_by_id(missing):
            path_of[c.id] = kb.store.document_by_id(c.doc_id).path
        return dedupe([path_of[cid] for cid, _ in ranked])

    lexical, dense, found_all = [], [], []
    candidate_ms = []
    for q in questions:
        t = time.perf_counter()
        found = kb.candidates(q.text, depth=DEPTH)
        candidate_ms.append(1000 * (time.perf_counter() - t))
        lexical.append(found.lexical)
        dense.append(found.dense)
        found_all.append(found)

    def hybrid(fusion: Fusion, idx) -> list[list[str]]:
        return [doc_paths(fuse(lexical[i], dense[i], fusion)[:30]) for i in idx]

    everything = range(len(questions))
    results = {
        "char-bigram BM25 (baseline)": metrics(baseline, golds),
        "lexical (Sudachi BM25)": metrics([doc_paths(lexical[i][:30]) for i in everything], golds),
        "dense": metrics([doc_paths(dense[i][:30]) for i in everything], golds),
        "hybrid RRF k=60 1:1 (a priori)": metrics(hybrid(A_PRIORI, everything), golds),
        "hybrid, product default fusion": metrics(hybrid(kb.fusion, everything), golds),
    }
    for name, m in results.items():
        print(f"{name:34s} {fmt(m)}")

    # Fusion tuned on half the articles, reported on the other half (no shared article).
    tune, test = halves(questions)
    grid = [Fusion(rrf_k=k, lexical_weight=w, dense_weight=1.0, depth=DEPTH)
            for k, w in itertools.product((1, 5, 10, 20, 40, 60, 100), (0.5, 0.7, 1.0, 1.4, 2.0, 3.0))]

    def score(fusion: Fusion, idx) -> float:
        m = metrics(hybrid(fusion, idx), [golds[i] for i in idx])
        return m["MRR@10"]

    best = max(grid, key=lambda f: score(f, tune))
    tuned_test = metrics(hybrid(best, test), [golds[i] for i in test])
    apriori_test = metrics(hybrid(A_PRIORI, test), [golds[i] for i in test])
    baseline_test = metrics([baseline[i] for i in test], [golds[i] for i in test])
    print(f"tuned on {len(tune)} questions: rrf_k={best.rrf_k} lexical_weight={best.lexical_weight}")
    print(f"held-out {len(test)} questions, baseline           {fmt(baseline_test)}")
    print(f"held-out {len(test)} questions, hybrid a priori    {fmt(apriori_test)}")
    print(f"held-out {len(test)} questions, hybrid tuned       {fmt(tuned_test)}")
    tuned_all = metrics(hybrid(best, everything), golds)
    print(f"all questions, hybrid tuned fusion  {fmt(tuned_all)}")

    # Second stage (rerank.py): features of the top fused candidates under the tuned fusion; a
    # listwise model (fit_listwise) fitted on the tuning half only, reported on the held-out half
    # and on all.
    fused = [fuse(lexical[i], dense[i], best) for i in everything]
    heads = [f[:RESCORE_DEPTH] for f in fused]
    passages = kb.passages(list({cid for h in heads for cid, _ in h}))
    t = time.perf_counter()
    feats = [features(questions[i].text, found_all[i].terms, heads[i], lexical[i], dense[i], passages)
             for i in everything]
    feature_ms = 1000 * (time.perf_counter() - t) / len(questions)
    doc_paths([item for h in heads for item in h])  # fill path_of for the labels
    w, b = fit_listwise([(feats[i], np.array([float(path_of[cid] == golds[i]) for cid, _ in heads[i]]))
                         for i in tune])
    fitted = Rescorer(tuple(round(float(v), 4) for v in w), round(b, 4), RESCORE_DEPTH)
    print("rescorer fitted on the tuning half: weights=(" + ", ".join(f"{v}" for v in fitted.weights)
          + f"), bias={fitted.bias}  [{', '.join(FEATURES)}]")

    def reranked(rescorer: Rescorer, idx) -> list[list[str]]:
        return [doc_paths(rescore(rescorer, fused[i], feats[i])[:30]) for i in idx]

    rescored_test = metrics(reranked(fitted, test), [golds[i] for i in test])
    rescored_all = metrics(reranked(fitted, everything), golds)
    print(f"held-out {len(test)} questions, tuned + rescored   {fmt(rescored_test)}")
    print(f"all questions, tuned + rescored     {fmt(rescored_all)}  (features {feature_ms:.2f} ms/query)")
    shipped = kb.rescorer
    if shipped.depth:
        shipped_test = metrics(reranked(shipped, test), [golds[i] for i in test])
        print(f"held-out {len(test)} questions, shipped rescorer   {fmt(shipped_test)}")

    latencies = []
    for i in range(0, len(questions), args.latency_every):
        t = time.perf_counter()
        kb.search(questions[i].text, k=5)
        latencies.append(1000 * (time.perf_counter() - t))
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    print(f"kb.search hybrid k=5 latency over {len(latencies)} queries: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
          f"(candidates only: p50 {percentile(candidate_ms, 50):.1f} ms)")
    hybrid_r1 = results["hybrid, product default fusion"]["R@1"]
    ratio = hybrid_r1 / results["char-bigram BM25 (baseline)"]["R@1"]
    print(f"hybrid / baseline R@1 ratio: {ratio:.3f}; max RSS {max_rss_mb():.0f} MB")
    kb.close()
    tmp.cleanup()
    print(json.dumps({
        "bench": "retrieval_jsquad", "embedder": args.embedder, "paragraphs": len(paragraphs),
        "questions": len(questions), "chunks": chunks,
        "ingest_chunks_per_s": (new_chunks / ingest_s) if new_chunks else None,
        "results": results,
        "fusion_tuned": {"rrf_k": best.rrf_k, "lexical_weight": best.lexical_weight, "tune_questions": len(tune),
                         "test_questions": len(test), "baseline": baseline_test, "a_priori": apriori_test,
                         "tuned": tuned_test, "tuned_all": tuned_all},
        "rescorer": {"weights": fitted.weights, "bias": fitted.bias, "depth": RESCORE_DEPTH,
                     "held_out": rescored_test, "all": rescored_all, "feature_ms_per_query": feature_ms},
        "latency_ms": {"p50": p50, "p95": p95}, "hybrid_over_baseline_r1": ratio, "max_rss_mb": max_rss_mb(),
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()

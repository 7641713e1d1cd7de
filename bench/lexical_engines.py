"""BM25 through the store: the tantivy index against FTS5, what it saves per query and costs per write.

On an existing sekisho store (e.g. the 100k-chunk store bench/retrieval_scale.py builds):
  rebuild       the time to build the tantivy index from the store's BM25 text (a fresh index
                folder; what the first search after an upgrade, or after a damaged index, pays)
  queries       JSQuAD questions' terms (Sudachi terms + character pairs, as hybrid search sends
                them), top 100, through SQLiteStore.lexical_search (chunk ids included) on:
                  tantivy              the shipped path, every term
                  fts5, shipped        the same file without the index: rarest terms within the
                                       postings budget
                  fts5, every term     and with the budget off
                p50/p95 ms, and how much of FTS5-every-term's top 10 each shares
  writes        documents of 5 chunks written into a new temporary store with and without the
                index (ms per write), then the first search's catch-up of all of them

    python bench/lexical_engines.py STORE [DATASET] [--queries 300] [--writes 200]
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
from retrieval_common import DEFAULT_JSQUAD, load_jsquad, percentile  # noqa: E402
from sekisho.retrieval.tokenize import analyzer, char_bigrams  # noqa: E402
from sekisho.store import Chunk, Document, Location  # noqa: E402
from sekisho.store.lexical_index import DerivedLexicalIndex  # noqa: E402
from sekisho.store.sqlite import SQLiteStore  # noqa: E402
from sekisho.store.sqlite.lexical import _Fts5Changes  # noqa: E402


def time_rebuild(store_path: Path) -> tuple[float, int]:
    store = SQLiteStore(store_path, lexical_index=False)
    with tempfile.TemporaryDirectory() as folder:
        store.lexical._index = DerivedLexicalIndex(  # noqa: SLF001 - a fresh, empty index
            Path(folder) / "index", store.get_meta("store_id") or "", _Fts5Changes(store._conn),  # noqa: SLF001
            fallback="FTS5")
        t = time.perf_counter()
        assert store.lexical.sync()  # noqa: SLF001
        seconds = time.perf_counter() - t
        assert store.lexical_index_current()
        chunks = store.chunk_count()
        store.close()
    return seconds, chunks


def time_writes(texts: list[str], writes: int) -> dict:
    """Seconds per document write, with and without the tantivy index, alternating documents."""
    rng = np.random.default_rng(7)
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        stores = {"with tantivy": SQLiteStore(Path(folder) / "a.db"),
                  "FTS5 only": SQLiteStore(Path(folder) / "b.db", lexical_index=False)}
        spent = dict.fromkeys(stores, 0.0)
        for i in range(writes):
            body = [texts[(5 * i + j) % len(texts)] for j in range(5)]
            doc = Document(id=f"w{i}", path=f"w{i}.txt", title="t", content_hash=str(i), media_type="text/plain",
                           encoding="utf-8", text="".join(body))
            chunks = [Chunk(id=f"w{i}:{j}", doc_id=doc.id, ordinal=j, text=t, norm_text=t, location=Location(0, len(t)))
                      for j, t in enumerate(body)]
            vectors = rng.standard_normal((5, 384), dtype=np.float32)
            for name, store in stores.items():
                t = time.perf_counter()
                store.replace_document(doc, chunks, body, vectors)
                spent[name] += time.perf_counter() - t
        for name, store in stores.items():
            out[name] = {"ms_per_write": 1000 * spent[name] / writes}
        t = time.perf_counter()
        stores["with tantivy"].lexical_search(["x"], 1)  # replays every write into the index
        out["with tantivy"]["catch_up_ms"] = 1000 * (time.perf_counter() - t)
        for store in stores.values():
            store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", type=Path)
    ap.add_argument("dataset", nargs="?", default=str(DEFAULT_JSQUAD))
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--writes", type=int, default=200)
    args = ap.parse_args()
    if not args.store.exists():
        sys.exit(f"error: {args.store}: no such store (build one with bench/retrieval_scale.py --store)")

    rebuild_s, chunks = time_rebuild(args.store)
    print(f"rebuild: {chunks} chunks into a fresh tantivy index in {rebuild_s:.1f} s")

    _, questions = load_jsquad(Path(args.dataset))
    questions = random.Random(7).sample(questions, min(args.queries, len(questions)))
    terms_of = []
    for q in questions:
        text = unicodedata.normalize("NFKC", q.text)
        terms_of.append(analyzer().tokenize(text) + char_bigrams(text))

    tantivy_store = SQLiteStore(args.store)
    fts5_store = SQLiteStore(args.store, lexical_index=False)
    for terms in terms_of[:20]:  # warm both engines' caches
        tantivy_store.lexical_search(terms, 100)
        fts5_store.lexical_search(terms, 100)
    print(f"tantivy index current: {tantivy_store.lexical_index_current()}")
    runs = [("tantivy", tantivy_store, None), ("fts5, shipped", fts5_store, fts5_store.lexical.postings_budget),
            ("fts5, every term", fts5_store, float("inf"))]
    report, tops = {}, {}
    for name, store, budget in runs:
        if budget is not None:
            store.lexical.postings_budget = budget
        latencies, tops[name] = [], []
        for terms in terms_of:
            t = time.perf_counter()
            ranked = store.lexical_search(terms, 100)
            latencies.append(1000 * (time.perf_counter() - t))
            tops[name].append([cid for cid, _ in ranked[:10]])
        report[name] = {"p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95)}
    reference = tops["fts5, every term"]
    for name in report:
        shared = sum(len(set(a) & set(b)) for a, b in zip(tops[name], reference))
        report[name]["top10_shared_with_fts5_every_term"] = shared / (10 * len(reference))
        print(f"{name:18s} p50 {report[name]['p50_ms']:7.2f} ms  p95 {report[name]['p95_ms']:7.2f} ms  "
              f"shares {report[name]['top10_shared_with_fts5_every_term']:.3f} of FTS5-every-term's top 10")
    sample_texts = [" ".join(analyzer().index_terms(unicodedata.normalize("NFKC", q.text))) for q in questions]
    tantivy_store.close()
    fts5_store.close()

    writes = time_writes(sample_texts, args.writes)
    ratio = writes["with tantivy"]["ms_per_write"] / writes["FTS5 only"]["ms_per_write"]
    for name, figures in writes.items():
        print(f"write, {name:12s} {figures['ms_per_write']:.1f} ms per 5-chunk document")
    print(f"a write with the index costs {ratio:.2f}x one without; the next search caught up "
          f"{args.writes} writes in {writes['with tantivy']['catch_up_ms']:.0f} ms")
    print(json.dumps({"bench": "lexical_engines", "chunks": chunks, "queries": len(questions),
                      "tantivy_rebuild_s": rebuild_s, "queries_top100": report, "writes": writes,
                      "write_cost_ratio": ratio}, ensure_ascii=False))


if __name__ == "__main__":
    main()

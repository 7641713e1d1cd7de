"""Re-embedding throughput: the city samples' chunks re-embedded from one embedder to another
(`sekisho reembed`), against ingesting the same files with the new embedder, in the same run.

    python bench/reembed_throughput.py [--source use-m3] [--target e5-small] [--repeats 3]

Both sides embed the same passages with the target embedder, which is most of either's time; the
ratio shows what re-embedding adds (staging writes, the switch) or saves (no extraction, chunking
or BM25 text). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from sekisho.ingest import ingest_paths
from sekisho.retrieval import KnowledgeBase, load_embedder
from sekisho.retrieval.reembed import reembed
from sekisho.store import open_store

CITY = Path(__file__).resolve().parents[1] / "samples" / "city"


def ingest_seconds(folder: Path, embedder: str) -> tuple[float, int]:
    with KnowledgeBase(open_store(folder / "ingest.db"), embedder) as kb:
        start = time.perf_counter()
        report = ingest_paths(kb, [CITY])
        return time.perf_counter() - start, report.chunks


def reembed_seconds(folder: Path, source: str, target: str) -> float:
    with KnowledgeBase(open_store(folder / "reembed.db"), source) as kb:
        ingest_paths(kb, [CITY])
    with KnowledgeBase(open_store(folder / "reembed.db"), target) as kb:
        start = time.perf_counter()
        assert reembed(kb)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="use-m3")
    parser.add_argument("--target", default="e5-small")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for name in (args.source, args.target):
        load_embedder(name)  # weights loaded before any clock starts
    ingest, reembedding, chunks = [], [], 0
    for _ in range(args.repeats):  # alternated, so both sides see the same machine
        with tempfile.TemporaryDirectory() as tmp:
            seconds, chunks = ingest_seconds(Path(tmp), args.target)
            ingest.append(seconds)
            reembedding.append(reembed_seconds(Path(tmp), args.source, args.target))
    result = {"chunks": chunks, "source": args.source, "target": args.target,
              "ingest_chunks_per_s": round(chunks / min(ingest), 1),
              "reembed_chunks_per_s": round(chunks / min(reembedding), 1),
              "ratio_time": round(min(reembedding) / min(ingest), 2)}
    print(f"ingest with {args.target}: {result['ingest_chunks_per_s']} chunks/s; re-embed {args.source} -> "
          f"{args.target}: {result['reembed_chunks_per_s']} chunks/s ({result['ratio_time']}x the ingest's time)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

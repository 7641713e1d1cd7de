"""Ingestion throughput: chunking, encoding detection, per-format extraction, and ingest_text
into a real knowledge base.

    python bench/ingest_throughput.py [--jsquad PATH] [--index N] [--embedder use-m3]

Every figure is paired with a baseline measured in the same process, so ratios survive a noisy
machine: chunking vs. a bare NFKC pass over the same text, detection vs. decoding with the codec
already known, ingest_text vs. the chunking inside it. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import unicodedata
from pathlib import Path

from retrieval_common import DEFAULT_JSQUAD, REPO, load_jsquad
from sekisho.config import RetrievalConfig, Settings, StoreConfig
from sekisho.ingest import chunk, extract, ingest_text
from sekisho.ingest.decode import decode_text
from sekisho.retrieval import open_knowledge_base
from sekisho.text import clean


def best_of(repeats: int, fn) -> float:
    """Fastest of several runs: the least disturbed by the other processes on the machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jsquad", type=Path, default=DEFAULT_JSQUAD)
    parser.add_argument("--index", type=int, default=100, help="paragraphs to ingest into a real KB (0: skip)")
    parser.add_argument("--embedder", default="use-m3")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    paragraphs, _ = load_jsquad(args.jsquad)
    bodies = [p.body for p in paragraphs]
    chars = sum(map(len, bodies))
    print(f"corpus: {len(bodies)} JSQuAD paragraphs, {chars:,} characters")

    t_nfkc = best_of(args.repeats, lambda: [unicodedata.normalize("NFKC", b) for b in bodies])
    t_chunk = best_of(args.repeats, lambda: [chunk(b, doc_id="d") for b in bodies])
    n_chunks = sum(len(chunk(b, doc_id="d")) for b in bodies)
    print(f"chunk(): {chars / t_chunk:,.0f} chars/s ({n_chunks} chunks); bare NFKC {chars / t_nfkc:,.0f} chars/s;"
          f" ratio {t_chunk / t_nfkc:.1f}x")

    corpus = "\n".join(bodies)
    decode = {}
    for codec in ("cp932", "euc_jp"):
        data = corpus.encode(codec, "ignore")  # drop the few characters the codec lacks (–, é)
        text = data.decode(codec)
        known = best_of(args.repeats, lambda data=data, codec=codec: data.decode(codec))
        detected = best_of(args.repeats, lambda data=data: decode_text(data))
        assert decode_text(data) == (text, codec)
        decode[codec] = {"mb_per_s": len(data) / detected / 1e6, "ratio_vs_known_codec": detected / known}
        print(f"decode_text {codec}: {len(data) / detected / 1e6:.1f} MB/s, {detected / known:.1f}x decoding with the codec known")

    extraction = {}
    for path in sorted((REPO / "samples" / "city").iterdir()):
        seconds = best_of(args.repeats, lambda path=path: extract(path))
        extraction[path.name] = round(seconds * 1000, 2)
        print(f"extract {path.name}: {seconds * 1000:.1f} ms")

    indexed = {}
    if args.index:
        subset = paragraphs[: args.index]
        t_sub_chunk = best_of(1, lambda: [chunk(p.body, doc_id="d") for p in subset])
        with tempfile.TemporaryDirectory() as folder:
            settings = Settings(store=StoreConfig(path="kb.db"), retrieval=RetrievalConfig(embedder=args.embedder), base_dir=folder)
            with open_knowledge_base(settings) as kb:
                kb.embedder.embed_passages(["warm-up"])  # model load is not ingestion
                start = time.perf_counter()
                for p in subset:
                    ingest_text(kb, path=p.path, title=p.title, text=p.body)
                t_ingest = time.perf_counter() - start
                start = time.perf_counter()
                for p in subset:  # the same texts again: unchanged, skipped by hash
                    ingest_text(kb, path=p.path, title=p.title, text=p.body)
                t_again = time.perf_counter() - start
        indexed = {
            "paragraphs": len(subset), "embedder": args.embedder,
            "paragraphs_per_s": len(subset) / t_ingest, "chunking_share": t_sub_chunk / t_ingest,
            "unchanged_paragraphs_per_s": len(subset) / t_again,
        }
        print(f"ingest_text ({args.embedder}): {len(subset) / t_ingest:.1f} paragraphs/s; chunking is "
              f"{100 * t_sub_chunk / t_ingest:.1f}% of it; re-ingesting unchanged: {len(subset) / t_again:,.0f} paragraphs/s")

    print(json.dumps({
        "paragraphs": len(bodies), "chars": chars, "chunks": n_chunks,
        "chunk_chars_per_s": round(chars / t_chunk), "nfkc_chars_per_s": round(chars / t_nfkc),
        "chunk_vs_nfkc": round(t_chunk / t_nfkc, 2),
        "normalize_chars_per_s": round(chars / best_of(args.repeats, lambda: [clean(b) for b in bodies])),
        "decode": {k: {kk: round(vv, 2) for kk, vv in v.items()} for k, v in decode.items()},
        "extract_ms": extraction,
        "ingest_text": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in indexed.items()},
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()

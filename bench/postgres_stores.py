"""Both stores in one run: the SQLite store (the baseline) against the PostgreSQL store.

1. JSQuAD retrieval (the held-out half of the questions): every distinct paragraph ingested into SQLite through `ingest_text` (real
   Sudachi terms, real embeddings; chunks/s reported), then copied into PostgreSQL with
   `copy_store` under `bulk_load` (what `sekisho migrate` does: same chunks, terms and
   vectors, so any difference is the store's; store-only chunks/s reported). Every question searched on both (`kb.search`,
   hybrid, k=5): R@1/R@5 of the gold paragraph, latency p50/p95 with the query embedding
   (first time asked) and without it (asked again: the embedding is cached), and the recall of
   pgvector's HNSW top 10 / top 100 against exact search (SQLite's brute force).
2. Scale: both stores filled to --chunks with filler documents written identically into each (as
   bench/retrieval_scale.py builds them: 2-5 JSQuAD sentences per chunk with their real terms, a
   vector near the vectors of the paragraphs they came from plus noise; store-only chunks/s
   reported), then the same measurements over the JSQuAD questions, plus this process's peak RSS
   and the PostgreSQL server's resident memory.
3. Audit: two processes, each with 8 threads, append for --audit-seconds to the SQLite audit file,
   then to PostgreSQL: records/s, whether the chain verifies, and records lost (appends that
   returned but are not in the log).

The PostgreSQL store is measured twice over the same database in each part: with this server's
tantivy index (`[store] lexical_index`, caught up before the timing starts: the time that takes is
reported) and with PostgreSQL's own BM25 alone (`lexical_index = ""`), the same-run baseline.

PostgreSQL is pgserver's (16 + pgvector 0.6.2) on a Unix socket, started here in a temp folder.

    python bench/postgres_stores.py [DATASET] [--embedder e5-small] [--chunks 100000] [--queries 300]
        [--audit-seconds 60] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval_common import DEFAULT_JSQUAD, dedupe, halves, load_jsquad, max_rss_mb, metrics, percentile  # noqa: E402
from sekisho.audit.log import AuditLog  # noqa: E402
from sekisho.config import RetrievalConfig, Settings, StoreConfig  # noqa: E402
from sekisho.ingest import ingest_text  # noqa: E402
from sekisho.retrieval import open_knowledge_base  # noqa: E402
from sekisho.retrieval.tokenize import char_bigrams  # noqa: E402
from sekisho.store import Chunk, Document, Location  # noqa: E402
from sekisho.store.migrate import copy_store  # noqa: E402

FILLER_CHUNKS_PER_DOC = 100


def start_postgres(folder: Path) -> tuple[object, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(folder, cleanup_mode="stop")
    return server, server.get_uri()


def server_rss_mb(folder: Path) -> float:
    """Resident memory of the PostgreSQL server in `folder`: its postmaster and every child."""
    import psutil

    postmaster = psutil.Process(int((folder / "postmaster.pid").read_text().split()[0]))
    return sum(p.memory_info().rss for p in [postmaster, *postmaster.children(recursive=True)]) / 2**20


def caught_up(kb) -> float:
    """Seconds until the PostgreSQL store's tantivy index reflects the database (a search started
    the catch-up in the background; this waits for it or runs it)."""
    t0 = time.perf_counter()
    while not kb.store.lexical_index_current():
        kb.store.lexical_index.sync()
        time.sleep(0.05)
    return time.perf_counter() - t0


def measure_postgres(postgres, bm25_alone, questions, golds) -> dict[str, object]:
    """The PostgreSQL store with its tantivy index current, then with PostgreSQL's BM25 alone."""
    postgres.store.lexical_search(["warm-up"], 1)  # starts the catch-up
    catch_up_s = caught_up(postgres)
    print(f"  tantivy index caught up in {catch_up_s:.1f} s", flush=True)
    figures = {"lexical_index_catch_up_s": catch_up_s, **measure("PostgreSQL", postgres, questions, golds)}
    assert postgres.store.lexical_index_current(), "the tantivy index fell behind while timed"
    return {"postgres": figures, "postgres_bm25_alone": measure("PG BM25", bm25_alone, questions, golds)}


def timed_searches(kb, questions, *, cached: bool) -> tuple[list[list[str]], list[float]]:
    path_of: dict[str, str] = {}
    rankings, times = [], []
    for q in questions:
        if cached:
            kb.query_vector(q.text)
        t0 = time.perf_counter()
        hits = kb.search(q.text, k=5)
        times.append((time.perf_counter() - t0) * 1000)
        for h in hits:
            path_of[h.chunk.id] = h.document.path
        rankings.append(dedupe([path_of[h.chunk.id] for h in hits]))
    return rankings, times


def hnsw_recall(exact_kb, approximate_kb, questions) -> dict[str, float]:
    """Share of the exact top 10 / top 100 (cosine) that the PostgreSQL store's HNSW returns."""
    found = {10: 0, 100: 0}
    for q in questions:
        vector = exact_kb.query_vector(q.text)
        exact = [cid for cid, _ in exact_kb.store.vector_search(vector, 100)]
        approximate = [cid for cid, _ in approximate_kb.store.vector_search(vector, 100)]
        for k in found:
            found[k] += len(set(exact[:k]) & set(approximate[:k])) / max(1, len(exact[:k]))
    return {f"hnsw_recall@{k}": v / len(questions) for k, v in found.items()}


def measure(name: str, kb, questions, golds) -> dict[str, float]:
    first, with_embedding = timed_searches(kb, questions, cached=False)
    _, without = timed_searches(kb, questions, cached=True)
    m = metrics(first, golds)
    figures = {"R@1": m["R@1"], "R@5": m["R@5"], "p50_ms": percentile(with_embedding, 50),
               "p95_ms": percentile(with_embedding, 95), "p50_ms_no_embedding": percentile(without, 50),
               "p95_ms_no_embedding": percentile(without, 95)}
    print(f"  {name:10s} R@1 {m['R@1']:.3f}  R@5 {m['R@5']:.3f}  search p50/p95 {figures['p50_ms']:.1f}/"
          f"{figures['p95_ms']:.1f} ms with the query embedding, {figures['p50_ms_no_embedding']:.1f}/"
          f"{figures['p95_ms_no_embedding']:.1f} ms without", flush=True)
    return figures


def sentences_of(text: str) -> list[str]:
    return [s + "。" for s in text.split("。") if len(s.strip()) > 8]


def filler_documents(kb, paragraphs, count: int, seed: int = 7, prefix: str = "filler"):
    """(document, chunks, lexical texts, vectors) of filler documents holding `count` chunks."""
    rng, np_rng = random.Random(seed), np.random.default_rng(seed)
    vector_of = {}
    for p in paragraphs:
        doc = kb.store.document_by_path(p.path)
        stored = kb.store.stored_chunks(doc.id) if doc else None
        if stored is not None and len(stored.chunks):
            vector_of[p.path] = stored.vectors[0]
    pool = [(s, vector_of[p.path]) for p in paragraphs if p.path in vector_of for s in sentences_of(p.body)]
    terms: dict[str, str] = {}
    made, doc_no = 0, 0
    while made < count:
        doc_no += 1
        n = min(FILLER_CHUNKS_PER_DOC, count - made)
        doc_id, title = f"{prefix}-{doc_no:06d}", f"合成文書 {doc_no}"
        title_terms = " ".join(kb.analyzer.tokenize(title))
        chunks, lexical, vectors, texts, pos = [], [], [], [], 0
        for i in range(n):
            picked = rng.sample(pool, rng.randint(2, 5))
            text = "".join(s for s, _ in picked)
            for s, _ in picked:
                if s not in terms:
                    terms[s] = " ".join(kb.analyzer.tokenize(s))
            lexical.append(" ".join([title_terms, *(terms[s] for s, _ in picked), *char_bigrams(title),
                                     *char_bigrams(text)]))
            vector = np.mean([v for _, v in picked], axis=0) + np_rng.normal(0, 0.02, size=picked[0][1].shape)
            vectors.append(vector / np.linalg.norm(vector))
            chunks.append(Chunk(id=f"{doc_id}:{i}", doc_id=doc_id, ordinal=i, text=text, norm_text=text,
                                location=Location(pos, pos + len(text))))
            texts.append(text)
            pos += len(text)
        document = Document(id=doc_id, path=f"{prefix}/{doc_no:06d}", title=title, content_hash=doc_id,
                            media_type="text/plain", encoding="utf-8", text="".join(texts))
        yield document, chunks, lexical, np.asarray(vectors, dtype=np.float32)
        made += n


def _append(target: str, key: str, name: str, seconds: float, out) -> None:
    log = AuditLog(target, key_path=key)
    appended = []
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def worker(n: int) -> None:
        while time.monotonic() < end:
            seq = log.append("bench", {"principal": f"{name}/{n}"}).seq
            with lock:
                appended.append(seq)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((name, appended))
    log.close()


def audit_run(target: str, key: Path, seconds: float) -> dict[str, float]:
    AuditLog(target, key_path=key).close()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    processes = [ctx.Process(target=_append, args=(target, str(key), f"p{n}", seconds, out)) for n in range(2)]
    t0 = time.perf_counter()
    for p in processes:
        p.start()
    results = dict(out.get() for _ in processes)
    for p in processes:
        p.join()
    elapsed = time.perf_counter() - t0
    log = AuditLog(target, key_path=key)
    verified = log.verify()
    stored = {e.seq for e in log.query(kind="bench", limit=10_000_000)}
    log.close()
    appended = [seq for seqs in results.values() for seq in seqs]
    return {"records": len(appended), "records_per_s": len(appended) / seconds, "elapsed_s": elapsed,
            "chain_ok": verified.ok, "chain_breaks": 0 if verified.ok else 1, "verify": verified.reason,
            "lost": len(set(appended) - stored), "duplicated": len(appended) - len(set(appended))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?", default=str(DEFAULT_JSQUAD))
    ap.add_argument("--embedder", default=RetrievalConfig().embedder)
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300, help="questions timed and scored at scale")
    ap.add_argument("--audit-seconds", type=float, default=60.0)
    ap.add_argument("--workdir", help="keep the SQLite store here (re-runs reuse its ingested paragraphs)")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="skpg-bench-", dir="/tmp")
    work = Path(args.workdir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    pg_folder = Path(tempfile.mkdtemp(prefix="skpgb-", dir="/tmp"))
    server, url = start_postgres(pg_folder)
    result: dict[str, object] = {"embedder": args.embedder}

    paragraphs, questions = load_jsquad(Path(args.dataset))
    questions = [questions[i] for i in halves(questions)[1]]  # the held-out half (no fitting touched it)
    golds = [q.gold for q in questions]
    retrieval = RetrievalConfig(embedder=args.embedder)
    sqlite = open_knowledge_base(Settings(store=StoreConfig(path=str(work / "kb.db")), retrieval=retrieval,
                                          base_dir=str(work)))
    postgres = open_knowledge_base(Settings(store=StoreConfig(url=url), retrieval=retrieval, base_dir=str(work)))
    bm25_alone = open_knowledge_base(Settings(store=StoreConfig(url=url, lexical_index=""), retrieval=retrieval,
                                              base_dir=str(work)))
    postgres._embedder = bm25_alone._embedder = sqlite.embedder  # one model in memory; the same weights either way
    sqlite.embedder.embed_queries(["warm-up"])

    print(f"== JSQuAD: {len(paragraphs)} paragraphs, {len(questions)} questions, embedder {args.embedder}", flush=True)
    before = sqlite.store.chunk_count()
    t0 = time.perf_counter()
    for p in paragraphs:
        ingest_text(sqlite, path=p.path, title=p.title, text=p.body)
    added = sqlite.store.chunk_count() - before
    ingest_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with postgres.store.bulk_load():  # as sekisho migrate copies
        copied = copy_store(sqlite.store, postgres.store)
    copy_s = time.perf_counter() - t0
    print(f"  ingest into SQLite (with embedding): {added} chunks in {ingest_s:.1f} s"
          + (f" = {added / ingest_s:.1f} chunks/s" if added else " (reused)"))
    print(f"  copy into PostgreSQL (store writes and one HNSW build): {copied.chunks} chunks in {copy_s:.1f} s = "
          f"{copied.chunks / copy_s:.0f} chunks/s", flush=True)
    result["jsquad"] = {"chunks": copied.chunks, "ingest_chunks_per_s_with_embedding": added / ingest_s if added else None,
                        "postgres_copy_chunks_per_s": copied.chunks / copy_s,
                        "sqlite": measure("SQLite", sqlite, questions, golds),
                        **measure_postgres(postgres, bm25_alone, questions, golds),
                        **hnsw_recall(sqlite, postgres, questions)}
    print(f"  HNSW against exact: recall@10 {result['jsquad']['hnsw_recall@10']:.3f}, "
          f"@100 {result['jsquad']['hnsw_recall@100']:.3f}", flush=True)

    if args.chunks > copied.chunks:
        need = args.chunks - sqlite.store.chunk_count()
        print(f"== Scale: {need} filler chunks into each store", flush=True)
        timings = {"sqlite": 0.0, "postgres": 0.0}
        with postgres.store.bulk_load():
            for batch in filler_documents(sqlite, paragraphs, need):
                for name, kb in (("sqlite", sqlite), ("postgres", postgres)):
                    t0 = time.perf_counter()
                    kb.store.replace_document(*batch)
                    timings[name] += time.perf_counter() - t0
            t0 = time.perf_counter()
        build_s = time.perf_counter() - t0
        timings["postgres"] += build_s
        for name, seconds in timings.items():
            print(f"  {name}: {need / seconds:.0f} chunks/s (store writes only"
                  + (f", with the HNSW build at the end: {build_s:.0f} s)" if name == "postgres" else ")"), flush=True)
        # One incremental write into the indexed store, as an upload would make it.
        batch = next(filler_documents(sqlite, paragraphs, 20, seed=11, prefix="extra"))
        t0 = time.perf_counter()
        postgres.store.replace_document(*batch)
        incremental_ms = (time.perf_counter() - t0) * 1000 / 20
        print(f"  postgres: {incremental_ms:.1f} ms per chunk written into the built index", flush=True)
        sample = random.Random(3).sample(questions, min(args.queries, len(questions)))
        sample_golds = [q.gold for q in sample]
        for kb in (sqlite, postgres, bm25_alone):
            kb._query_vectors.clear()
        result["scale"] = {"chunks": postgres.store.chunk_count(), "questions": len(sample),
                           "sqlite_write_chunks_per_s": need / timings["sqlite"],
                           "postgres_write_chunks_per_s": need / timings["postgres"],
                           "postgres_hnsw_build_s": build_s, "postgres_incremental_ms_per_chunk": incremental_ms,
                           "sqlite": measure("SQLite", sqlite, sample, sample_golds),
                           **measure_postgres(postgres, bm25_alone, sample, sample_golds),
                           **hnsw_recall(sqlite, postgres, sample),
                           "process_peak_rss_mb": max_rss_mb(), "postgres_server_rss_mb": server_rss_mb(pg_folder)}
        scale = result["scale"]
        print(f"  HNSW against exact: recall@10 {scale['hnsw_recall@10']:.3f}, @100 {scale['hnsw_recall@100']:.3f}; "
              f"peak RSS here {scale['process_peak_rss_mb']:.0f} MB, PostgreSQL server "
              f"{scale['postgres_server_rss_mb']:.0f} MB", flush=True)
    sqlite.close()
    postgres.close()
    bm25_alone.close()

    if args.audit_seconds > 0:
        print(f"== Audit: two processes x 8 threads appending for {args.audit_seconds:.0f} s", flush=True)
        result["audit"] = {}
        for name, target in (("sqlite", str(work / "audit-bench.db")), ("postgres", url)):
            # A key (and so a witness file) per log: a witness names the newest checkpoint of one chain.
            figures = audit_run(target, work / f"bench-{name}.key", args.audit_seconds)
            result["audit"][name] = figures
            print(f"  {name}: {figures['records']} records = {figures['records_per_s']:.0f}/s, chain "
                  f"{'verifies' if figures['chain_ok'] else 'BROKEN'}, lost {figures['lost']}", flush=True)
        (work / "audit-bench.db").unlink(missing_ok=True)
    server.cleanup()
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()

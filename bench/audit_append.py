"""The audit log under concurrent appends: group commit against one transaction (one fsync) per
append, in the same run, on the same disk.

    python bench/audit_append.py [--threads 1,8,32,64] [--seconds 5] [--dir DIR]

Each thread appends a request-sized record (~1.5 KB: a prompt, findings, sources) as fast as it
can; every append returns only once its record is durable (synchronous=FULL), as in serving.
Reports appends/s, p50/p99 latency and the mean batch size; then verifies each chain. Last line:
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

from sekisho.audit.log import AuditLog, _Append

RECORD = {"principal": "key:ab12cd34:load", "role": "user", "purpose": "answer", "status": "ok",
          "prompt": [{"role": "system", "content": "資料に基づいて答えてください。" * 10},
                     {"role": "user", "content": "住民票の写しの交付手数料はいくらですか？" * 20}],
          "findings": [], "sources": [{"chunk_id": f"doc{i}:0", "title": "住民票"} for i in range(3)],
          "output": "住民票の写しの交付手数料は1通300円です。[1]" * 3}


class OneByOne(AuditLog):
    """The baseline: every append its own transaction and fsync (what sekisho did before)."""

    def append_with(self, kind, record, also):
        op = _Append(kind, record, also, self._body(kind, record))
        with self._lock:
            self._commit([op])
        return op.outcome()


def run(log: AuditLog, threads: int, seconds: float) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    batches_before = log.batches

    def worker() -> None:
        mine = []
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            log.append("ask", RECORD)
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    batches = log.batches - batches_before
    return {"appends_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(ordered[len(ordered) // 2] * 1000, 2),
            "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 2),
            "mean_batch": round(len(latencies) / max(1, batches), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,8,32,64")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--dir", type=Path, help="folder on the disk to measure (default: a temporary folder)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sekisho-audit-", dir=args.dir))
    results: dict = {}
    try:
        for threads in [int(t) for t in args.threads.split(",")]:
            row = {}
            for name, cls in (("one_by_one", OneByOne), ("group_commit", AuditLog)):
                # A key (and its witness file) per log: the witness names one log's newest checkpoint.
                log = cls(folder / f"{name}-{threads}.db", key_path=folder / f"{name}-{threads}.key")
                row[name] = run(log, threads, args.seconds)
                verified = log.verify()
                row[name]["verified"] = verified.ok and verified.checked > 0
                log.close()
            row["speedup"] = round(row["group_commit"]["appends_per_s"] / row["one_by_one"]["appends_per_s"], 2)
            results[threads] = row
            g, o = row["group_commit"], row["one_by_one"]
            print(f"{threads:3d} threads  one by one {o['appends_per_s']:8.1f}/s p50 {o['p50_ms']:7.2f} ms p99 "
                  f"{o['p99_ms']:7.2f} ms | group {g['appends_per_s']:8.1f}/s p50 {g['p50_ms']:7.2f} ms p99 "
                  f"{g['p99_ms']:7.2f} ms batch {g['mean_batch']:5.1f} | x{row['speedup']}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({"bench": "audit_append", "seconds": args.seconds, "results": results}))


if __name__ == "__main__":
    main()

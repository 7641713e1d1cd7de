"""The usage report over a large audit log: how long the figures take, against the floor of merely
reading the same records, and how much memory they hold.

    python bench/usage_report.py [--records 100000] [--days 30] [--repeats 3] [--dir DIR]

Builds a signed, hash-chained audit log of `--records` governed requests (request-sized records,
~3 KB: a prompt with two passages, sources, findings, output) spread over `--days` days, from 200
users in 4 roles and 6 tags, through 5 task apps and the 3 doors, on 4 models, with blocks,
masks, holds, errors, energy figures on most, and feedback on 5% of the answers. Then times
(median of `--repeats`):

- read: `AuditLog.records` over the same records, parsing each and counting nothing (the floor);
- by day: the API's default report;
- page: what the 利用状況 page computes (by day, plus per app, model, role, tag and user);
- export: the page's CSV download (by day, app, model, role, tag and user at once);
- the page over the last week only (its cost follows the period asked for, not the log's length);

and the peak memory the page's report allocates (tracemalloc), with the same for a tenth of the
records, to show it does not grow with the log. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sekisho.audit.log as audit_log
from sekisho.audit.log import AuditLog
from sekisho.audit.usage import REQUEST_KINDS, UsageQuery, usage_report
from sekisho.identity import Principal, Role

ADMIN = Principal("bench:admin", Role.ADMIN, ("*",))
APPS = ["summarise", "proofread", "translate", "minutes", "faq"]
MODELS = ["extractive", "qwen2.5-1.5b", "vendor-gpt", "資料なし (no passages)"]
TAGS = ["hr", "finance", "welfare", "tax", "legal", "it"]
START = datetime(2026, 11, 1, tzinfo=UTC)
PASSAGE = "住民票の写しの交付手数料は、窓口で1通300円、コンビニ交付で1通200円です。" * 8


def request_record(rng: random.Random, user: int) -> tuple[str, dict]:
    door = rng.random()
    kind = "ask" if door < 0.6 else "chat"
    record = {
        "principal": f"key:{user:06x}:staff{user}",
        "role": ["user", "user", "user", "reviewer", "admin"][user % 5],
        "tags": sorted({TAGS[user % 6], TAGS[(user * 7) % 6]}),
        "purpose": "answer", "request_id": f"{rng.getrandbits(64):016x}",
        "backend": {"requested": "extractive", "used": rng.choice(MODELS), "kind": "extractive", "model": "m",
                    "version": "1", "local": True},
        "prompt": [{"role": "system", "content": "資料に基づいて答えてください。出典を [n] で示してください。"},
                   {"role": "user", "content": f"[1] {PASSAGE}\n[2] {PASSAGE}\n質問: 住民票の写しの手数料は？"}],
        "chunk_ids": ["doc1:1", "doc2:4"], "findings": [], "masked_values": [], "policy": "built-in",
        "generator": "sekisho/0.1.0",
        "sources": [{"chunk_id": f"doc{i}:1", "doc_id": f"doc{i}", "path": f"/srv/docs/doc{i}.md", "title": "住民票",
                     "location": "手数料", "chunk_sha256": "0" * 64, "document_sha256": "1" * 64} for i in (1, 2)],
    }
    if door < 0.3:
        record["conversation_id"] = f"c{user}"
    elif 0.6 <= door < 0.8:
        record["app"], record["app_version"] = rng.choice(APPS), "1"
    fate = rng.random()
    if fate < 0.03:
        record.update(status="blocked", reason="blocked:MY_NUMBER", findings=[
            {"entity": "MY_NUMBER", "where": "question", "start": 7, "end": 19, "action": "block",
             "recognizer": "my_number", "score": 0.95, "placeholder": "<マイナンバー_1>"}])
    elif fate < 0.04:
        record.update(status="error", error="backend 'vendor-gpt': connection refused")
    else:
        tokens = {"prompt": rng.randint(300, 1500), "completion": rng.randint(20, 300)}
        record.update(status="held" if fate < 0.07 else "ok", output="窓口で1通300円です。[1]" * 4,
                      finish_reason="stop", tokens=tokens, latency_s=round(rng.lognormvariate(-1, 1), 4))
        if fate > 0.9:
            record["findings"] = [{"entity": "PHONE_NUMBER", "where": "message[1]", "start": 3, "end": 16,
                                   "action": "mask", "recognizer": "phone", "score": 0.9,
                                   "placeholder": "<電話番号_1>"}]
    record["duration_s"] = round(rng.lognormvariate(-1.5, 1), 4)
    if rng.random() < 0.9:
        record["energy"] = {"joules": round(rng.uniform(1, 400), 3), "source": "estimate", "label": "CPU time"}
    return kind, record


def build(path: Path, records: int, days: int, seed: int = 7) -> int:
    """The log, written in transactions of 2,000 appends (hash chain and checkpoints as always),
    with timestamps spread evenly over the days."""
    rng = random.Random(seed)
    start = START
    step = timedelta(days=days) / records
    log = AuditLog(path, key_path=path.with_suffix(".key"))
    clock = {"at": start}
    real_now = audit_log.utc_now
    audit_log.utc_now = lambda: clock["at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    answers: list[tuple[int, str]] = []
    try:
        for first in range(0, records, 2000):
            with log.transaction() as conn:
                for n in range(first, min(records, first + 2000)):
                    clock["at"] = start + step * n
                    user = rng.randrange(200)
                    kind, record = request_record(rng, user)
                    entry = log.append_in(conn, kind, record)
                    if record["status"] == "ok" and rng.random() < 0.05:
                        answers.append((entry.seq, record["principal"]))
                    while answers and rng.random() < 0.5:  # the feedback comes a little later
                        seq, principal = answers.pop(0)
                        rating = rng.choice((1, 1, -1))
                        log.append_in(conn, "feedback", {"principal": principal, "role": "user", "audit_seq": seq,
                                                         "rating": rating, "reason": "古い情報" if rating < 0 else ""})
    finally:
        audit_log.utc_now = real_now
    seq = log.head()[0]
    log.close()
    return seq


def timed(fn, repeats: int) -> dict:
    """Median wall and CPU seconds: on a shared machine the CPU time is the steadier figure."""
    wall, cpu = [], []
    for _ in range(repeats):
        started, used = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - used)
    return {"wall_s": round(statistics.median(wall), 3), "cpu_s": round(statistics.median(cpu), 3)}


def peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(path: Path, days: int, repeats: int) -> dict:
    log = AuditLog(path, key_path=path.with_suffix(".key"))
    page_tables = [("app",), ("model",), ("role",), ("tag",), ("user",)]
    by_day = UsageQuery(by=("day",), timezone="Asia/Tokyo")
    export = UsageQuery(by=("day", "app", "model", "role", "tag", "user"), timezone="Asia/Tokyo")
    end = START.date() + timedelta(days=days - 1)
    last_week = UsageQuery(since=end - timedelta(days=6), until=end, by=("day",), timezone="Asia/Tokyo")
    requests = sum(1 for _ in log.records(kinds=REQUEST_KINDS))
    report = usage_report(log, by_day, viewer=ADMIN, tables=page_tables)
    assert report.total.requests == requests
    out = {
        "requests": requests,
        "read": timed(lambda: sum(1 for _ in log.records(kinds=REQUEST_KINDS)), repeats),
        "by_day": timed(lambda: usage_report(log, by_day, viewer=ADMIN), repeats),
        "page": timed(lambda: usage_report(log, by_day, viewer=ADMIN, tables=page_tables), repeats),
        "export": timed(lambda: usage_report(log, export, viewer=ADMIN), repeats),
        # The page over the last week only: the cost follows the period, not the log's length.
        "page_last_week": timed(lambda: usage_report(log, last_week, viewer=ADMIN, tables=page_tables), repeats),
        "page_peak_mb": round(peak_bytes(lambda: usage_report(log, by_day, viewer=ADMIN, tables=page_tables)) / 2**20,
                              2),
        "export_rows": len(usage_report(log, export, viewer=ADMIN).rows),
        "feedback": report.total.thumbs_up + report.total.thumbs_down,
    }
    log.close()
    out["page_records_per_cpu_s"] = round(requests / out["page"]["cpu_s"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="folder on the disk to use (default: a temporary folder)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sekisho-usage-", dir=args.dir))
    results = {}
    try:
        for records in (args.records // 10, args.records):
            path = folder / f"audit-{records}.db"
            started = time.perf_counter()
            seq = build(path, records, args.days)
            built_s = time.perf_counter() - started
            row = measure(path, args.days, args.repeats)
            row["log_records"] = seq
            row["log_mb"] = round(path.stat().st_size / 2**20, 1)
            results[records] = row
            cpu = {k: row[k]["cpu_s"] for k in ("read", "by_day", "page", "export", "page_last_week")}
            print(f"{records:>8,} requests ({seq:,} records, {row['log_mb']} MB, built in {built_s:.0f} s), CPU s: "
                  f"read {cpu['read']} | by day {cpu['by_day']} | "
                  f"page {cpu['page']} ({row['page_records_per_cpu_s']:,}/s) | export {cpu['export']} "
                  f"({row['export_rows']:,} rows) | last week's page {cpu['page_last_week']} | page peak "
                  f"{row['page_peak_mb']} MB; page wall "
                  f"{row['page']['wall_s']} s", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({"bench": "usage_report", "days": args.days, "repeats": args.repeats, "results": results}))


if __name__ == "__main__":
    main()

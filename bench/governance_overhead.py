"""What the whole governance pipeline (guard scan of prompt and passages, policy, masking, output
scan, the model call's energy meter, durable hash-chained audit append) adds to one request, and
what the server adds around it for quotas (admitting the request and charging its tokens: two
write transactions on the access database).

Baseline and governed calls use the same extractive backend, the same grounded request (5 passages
from the sample city notices, one carrying a name, a phone number and a My Number) in the same
process, interleaved so that machine noise hits both alike. The audit database lives in
--workdir (default: a temporary folder on the same disk as the repository, since fsync cost
depends on the disk; /tmp may be RAM).

    python bench/governance_overhead.py [--n 200] [--workdir DIR]

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from sekisho.answer import request_for_passages
from sekisho.audit import AuditLog
from sekisho.config import QuotaLimits, QuotasConfig, Settings
from sekisho.db import open_database
from sekisho.guard.scan import scan
from sekisho.identity import Principal, Role
from sekisho.models import Passage
from sekisho.models.energy import CallMeter
from sekisho.request import RequestPath
from sekisho.server.keys import KeyStore
from sekisho.server.quotas import Quotas

ROOT = Path(__file__).resolve().parents[1]
CITY = ROOT / "samples" / "city"
PII = "申請者: 山田太郎（電話 090-1234-5678、マイナンバー 123456789018）の代理で請求します。"


def passages(count: int = 5, size: int = 400) -> list[Passage]:
    texts = [(p.stem, p.read_text(encoding="utf-8")) for p in sorted(CITY.glob("*.md"))]  # the UTF-8 notices
    chunks = [(title, text[i:i + size]) for title, text in texts for i in range(0, len(text), size)]
    chosen = chunks[:count]
    title, text = chosen[0]
    chosen[0] = (title, PII + text[: size - len(PII)])
    return [Passage(n, f"{title}:{n}", title, text) for n, (title, text) in enumerate(chosen, 1)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="requests per variant")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the audit database")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix=".bench-governance-", dir=args.workdir or ROOT))
    try:
        settings = Settings.model_validate({"base_dir": str(workdir),
                                            "audit": {"path": "audit.db", "key_path": "signing.key"}})
        request_path = RequestPath(settings)
        # The same path with the energy meter off (a meter that reads nothing), in the same run,
        # the two called one after the other in alternating order (whichever goes second was
        # slower by more than the meter costs): what metering every call costs, as a ratio of medians.
        unmetered = RequestPath(settings, audit=request_path.audit, review=request_path.review)  # one log: same costs
        unmetered._meter_of = lambda turn: lambda: CallMeter("estimate", "off")  # type: ignore[method-assign]
        backend = request_path.backend("extractive")
        alice = Principal("alice", Role.USER)
        request = request_for_passages("住民票の写しの手数料はいくらですか", passages())
        for _ in range(5):  # warm caches (tokeniser, regexes, SQLite pages)
            backend.complete(request)
            request_path.complete(request, backend="extractive", principal=alice)
            unmetered.complete(request, backend="extractive", principal=alice)

        direct, governed, scans, appends, meters, quotas, offs = [], [], [], [], [], [], []
        audit: AuditLog = request_path.audit
        metering = request_path.metering.meter_for(backend.info(), None)
        keys = KeyStore(open_database(workdir / "access.db"))
        quota = Quotas(keys.db, QuotasConfig(roles={"user": QuotaLimits(requests_per_minute=10**9,
                                                                        tokens_per_day=10**12)}))
        for i in range(args.n):
            t0 = time.perf_counter()
            backend.complete(request)
            t1 = time.perf_counter()
            took = {}
            for path in (request_path, unmetered) if i % 2 == 0 else (unmetered, request_path):
                started = time.perf_counter()
                took[path] = (path.complete(request, backend="extractive", principal=alice), started)
            result, started = took[request_path]
            off_started = took[unmetered][1]
            t2 = time.perf_counter()
            for message in request.messages:
                scan(message.content)
            for p in request.passages or ():
                scan(p.text)
            t3 = time.perf_counter()
            audit.append("bench", {"principal": "bench", "output": result.completion.text})
            t4 = time.perf_counter()
            meter = metering()  # a call's meter, alone: what the path adds per call to measure energy
            meter.begin()
            meter.thread(lambda: None)()
            meter.end()
            meter.energy().to_json()
            t5 = time.perf_counter()
            quota.admit(alice, None)
            quota.charge(alice, 100)
            t6 = time.perf_counter()
            first, second = sorted([started, off_started])
            direct.append(t1 - t0)
            # Each call's time: to the next call's start, or for the second, to t2.
            governed.append((second if started == first else t2) - started)
            offs.append((second if off_started == first else t2) - off_started)
            scans.append(t3 - t2)
            appends.append(t4 - t3)
            meters.append(t5 - t4)
            quotas.append(t6 - t5)
        keys.close()
        assert audit.verify().ok
        overhead = [g - d for g, d in zip(governed, direct)]

        def ms(values: list[float], q: float) -> float:
            return round(percentile(values, q) * 1000, 3)

        chars = sum(len(m.content) for m in request.messages) + sum(len(p.text) for p in request.passages or ())
        print(f"request: {len(request.passages or [])} passages, {chars} characters scanned; n={args.n}")
        print(f"direct backend.complete      p50 {ms(direct, .5):8.3f} ms   p95 {ms(direct, .95):8.3f} ms")
        print(f"request_path.complete (governed)  p50 {ms(governed, .5):8.3f} ms   p95 {ms(governed, .95):8.3f} ms")
        print(f"overhead (paired)            p50 {ms(overhead, .5):8.3f} ms   p95 {ms(overhead, .95):8.3f} ms")
        print(f"  of which guard scan        p50 {ms(scans, .5):8.3f} ms   p95 {ms(scans, .95):8.3f} ms")
        print(f"  of which audit append      p50 {ms(appends, .5):8.3f} ms   p95 {ms(appends, .95):8.3f} ms")
        print(f"  of which energy meter      p50 {ms(meters, .5):8.3f} ms   p95 {ms(meters, .95):8.3f} ms")
        print(f"governed, meter off          p50 {ms(offs, .5):8.3f} ms   p95 {ms(offs, .95):8.3f} ms   "
              f"ratio on/off p50 {statistics.median(governed) / statistics.median(offs):.3f}x")
        print(f"server, per request: quota admit + charge  p50 {ms(quotas, .5):8.3f} ms   p95 {ms(quotas, .95):8.3f} ms")
        print(f"ratio governed/direct p50: {statistics.median(governed) / statistics.median(direct):.2f}x")
        print(json.dumps({
            "bench": "governance_overhead", "n": args.n, "chars_scanned": chars,
            "direct_p50_ms": ms(direct, .5), "direct_p95_ms": ms(direct, .95),
            "governed_p50_ms": ms(governed, .5), "governed_p95_ms": ms(governed, .95),
            "overhead_p50_ms": ms(overhead, .5), "overhead_p95_ms": ms(overhead, .95),
            "scan_p50_ms": ms(scans, .5), "audit_append_p50_ms": ms(appends, .5),
            "energy_meter_p50_ms": ms(meters, .5), "meter_off_p50_ms": ms(offs, .5),
            "meter_on_off_ratio_p50": round(statistics.median(governed) / statistics.median(offs), 3),
            "quota_admit_charge_p50_ms": ms(quotas, .5),
            "quota_admit_charge_p95_ms": ms(quotas, .95),
            "target_overhead_p50_ms": 5.0,
        }, ensure_ascii=False))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""The figures of #19 ("Prove it holds"), each beside a baseline measured in the same run:

1. Leaks: every evasion form of the leak corpus (tests/server_fixtures/leaks.py) through every door
   (sekisho ask, /api/ask, the gateway plain and streamed, with and without retrieval) of a real
   `sekisho serve` to an external model server that records what it receives; the detector looks
   for each value in any script. Baseline: the same traffic under a policy that allows everything,
   which shows the detector finds what arrives.
2. Stall: 560 KB of phone numbers through the gateway to the external model (scanned, masked,
   restored) while a client keeps sending small requests. Baseline: the small requests alone.
3. The padded Word archive (a document.xml of 247 MB of paragraphs padded with 6 MB of noise,
   ~40:1, which the old ratio check accepted) and a Word file of 20,000 styled paragraphs, read by
   the reader at --base (python-docx) and by today's, each in a process of its own: peak memory
   and seconds (a reader still going after 180 s is stopped; its peak is what it had reached).

    PYTHONPATH=src python bench/hardening.py [--base COMMIT] [--skip-cli]

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from guard_stall import phone_request  # noqa: E402
from server_fixtures.leaks import DOCUMENTS, EVASIONS, GOMI, leaks  # noqa: E402
from server_fixtures.process import Deployment  # noqa: E402
from server_fixtures.support import start_fake  # noqa: E402
from server_fixtures.vendor import Recording, backend_toml  # noqa: E402

ALLOW_ALL = "[external]\ndefault = \"allow\"\n[local]\ndefault = \"allow\"\n"


# --- 1. leaks ---------------------------------------------------------------------------------------

def deploy(folder: Path, vendor_url: str, policy: str | None) -> Deployment:
    folder.mkdir()
    extra = backend_toml(vendor_url, "vendor", local=False) + '[models.backends.extractive]\nkind = "extractive"\n'
    if policy is not None:
        (folder / "policy.toml").write_text(policy, encoding="utf-8")
        extra += '[guard]\npolicy = "policy.toml"\n'
    # Every question reaches its passages, so passages travel to the vendor too.
    deployment = Deployment.create(folder, retrieval_toml="min_score = 0.0", extra_toml=extra)
    docs = folder / "docs"
    docs.mkdir()
    for name, (text, tags) in DOCUMENTS.items():
        (docs / name).write_text(text, encoding="utf-8")
        tagging = [arg for tag in tags for arg in ("--tag", tag)]
        assert deployment.run("ingest", str(docs / name), *tagging).returncode == 0
    return deployment


def doors(deployment: Deployment, url: str, key: str, with_cli: bool) -> dict:
    headers = {"Authorization": f"Bearer {key}"}

    def chat(model: str, stream: bool):
        def ask(text: str) -> None:
            httpx.post(url + "/v1/chat/completions", headers=headers, timeout=60,
                       json={"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]})
        return ask

    found = {"api ask": lambda text: httpx.post(url + "/api/ask", headers=headers, timeout=60,
                                                 json={"question": text, "backend": "vendor"}),
             "v1 chat": chat("vendor", False), "v1 chat stream": chat("vendor", True),
             "v1 rag": chat("sekisho-rag/vendor", False), "v1 rag stream": chat("sekisho-rag/vendor", True)}
    if with_cli:
        found["cli ask"] = lambda text: deployment.run("ask", text, "--model", "vendor", "--json", "--tag", "一般")
    return found


def leak_sweep(deployment: Deployment, received: Recording, with_cli: bool) -> dict:
    key = deployment.key("user")
    served = deployment.serve(key)
    try:
        by_door = {}
        for door, ask in doors(deployment, served.url, key, with_cli).items():
            received.new()
            reached = leaked = 0
            for _, form, value in EVASIONS:
                ask(f"{GOMI}{form}")
                bodies = received.new()
                reached += bool(bodies)
                leaked += bool(leaks(bodies, value))
            by_door[door] = {"sent": len(EVASIONS), "reached_model": reached, "leaked": leaked}
            print(f"  {door:15s} sent {len(EVASIONS)}  reached the model {reached:2d}  leaked {leaked:2d}", flush=True)
        return by_door
    finally:
        served.stop()


# --- 2. stall -------------------------------------------------------------------------------------

def small_latencies(url: str, headers: dict, until: threading.Event | None, count: int = 20) -> list[float]:
    seconds = []
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        while (until is None and len(seconds) < count) or (until is not None and not until.is_set()):
            started = time.perf_counter()
            client.post("/v1/chat/completions", json={"model": "vendor", "messages": [
                {"role": "user", "content": "折り返しは03-1234-5678までお願いします"}]})
            seconds.append(time.perf_counter() - started)
            time.sleep(0.05)
    return seconds


def stall(deployment: Deployment, kb: int = 560) -> dict:
    key = deployment.key("user")
    headers = {"Authorization": f"Bearer {key}"}
    served = deployment.serve(key)
    try:
        small_latencies(served.url, headers, None, count=3)  # warm: backend opened, tables built
        alone = small_latencies(served.url, headers, None)
        text = phone_request(kb)
        body = json.dumps({"model": "vendor", "messages": [{"role": "user", "content": text}]}, ensure_ascii=False)
        done = threading.Event()
        outcome: dict = {}

        def big() -> None:
            started = time.perf_counter()
            response = httpx.post(served.url + "/v1/chat/completions", headers={**headers, "Content-Type": "application/json"},
                                  content=body.encode(), timeout=120)
            outcome.update(status=response.status_code, seconds=time.perf_counter() - started)
            done.set()

        thread = threading.Thread(target=big)
        thread.start()
        during = small_latencies(served.url, headers, done)
        thread.join()
    finally:
        served.stop()
    result = {"big_kb": len(body.encode()) // 1000, "big_status": outcome["status"], "big_s": round(outcome["seconds"], 2),
              "small_alone_p50_ms": round(1000 * statistics.median(alone), 1),
              "small_alone_max_ms": round(1000 * max(alone), 1),
              "small_during_n": len(during), "small_during_p50_ms": round(1000 * statistics.median(during), 1),
              "small_during_max_ms": round(1000 * max(during), 1)}
    print(f"  {kb} KB request: {result['big_status']} in {result['big_s']} s; small requests alone p50 "
          f"{result['small_alone_p50_ms']} ms max {result['small_alone_max_ms']} ms, during it ({len(during)}) p50 "
          f"{result['small_during_p50_ms']} ms max {result['small_during_max_ms']} ms", flush=True)
    return result


# --- 3. Word files, then and now ------------------------------------------------------------------

READ = textwrap.dedent("""
    import importlib, importlib.util, json, resource, sys, time
    path, name, source = sys.argv[1], sys.argv[2], sys.argv[3]
    if source == "now":
        module = importlib.import_module("sekisho.ingest.extract")
    else:
        spec = importlib.util.spec_from_file_location("sekisho.ingest.extract_then", source)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    data = open(path, "rb").read()
    started = time.perf_counter()
    try:
        module.extract(data, name=name)
        outcome = "read"
    except Exception as exc:
        outcome = type(exc).__name__ + ": " + " ".join(str(exc).split())[:120]
    print(json.dumps({"seconds": round(time.perf_counter() - started, 2), "outcome": outcome,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
""")


def read_in_process(path: Path, name: str, source: str, timeout: float) -> dict:
    """Read one file in a process of its own; past `timeout` it is stopped, and its peak memory
    so far (VmHWM) is what it reached."""
    process = subprocess.Popen([sys.executable, "-c", READ, str(path), name, source], stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    started = time.monotonic()
    peak = 0
    while process.poll() is None and time.monotonic() - started < timeout:
        peak = max(peak, _peak_mb(process.pid))
        time.sleep(0.2)
    if process.poll() is None:
        peak = max(peak, _peak_mb(process.pid))
        process.kill()
        process.wait()
        return {"seconds": timeout, "outcome": f"did not finish in {timeout:g} s", "peak_rss_mb": peak}
    return json.loads(process.stdout.read().strip().splitlines()[-1])


def _peak_mb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def word_files(folder: Path, base: str) -> dict:
    from ingest_fixtures.archives import docx_with_body, padded_bomb, paragraph

    then = folder / "extract_then.py"
    then.write_text(subprocess.run(["git", "-C", str(ROOT), "show", f"{base}:src/sekisho/ingest/extract.py"],
                                   check=True, capture_output=True, text=True).stdout, encoding="utf-8")
    bomb = padded_bomb(folder / "padded.docx")
    styles = ("Heading1", "Heading2", "ListBullet", None, "Quote")
    long = folder / "styled.docx"
    long.write_bytes(docx_with_body("".join(paragraph(f"第{i}項 本文の段落です。", styles[i % 5]) for i in range(20_000))))
    results = {}
    for label, path in (("padded bomb", bomb), ("20,000 styled paragraphs", long)):
        row = {"file_kb": path.stat().st_size // 1000}
        for when, source in (("then", str(then)), ("now", "now")):
            row[when] = read_in_process(path, path.name, source, timeout=180)
            print(f"  {label:25s} {when:4s} {row[when]['outcome'][:70]:70s} {row[when]['seconds']:7.2f} s "
                  f"peak {row[when]['peak_rss_mb']} MB", flush=True)
        results[label] = row
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=None, help="the commit to compare Word reading with (default: merge-base with main)")
    parser.add_argument("--skip-cli", action="store_true", help="leave the CLI door out of the leak sweep (slower)")
    parser.add_argument("--stall-kb", type=int, default=560, help="size of the big request of the stall part")
    parser.add_argument("--stall-only", action="store_true", help="measure only the stall")
    args = parser.parse_args()
    base = args.base or subprocess.run(["git", "-C", str(ROOT), "merge-base", "HEAD", "main"], check=True,
                                       capture_output=True, text=True).stdout.strip()
    out: dict = {"bench": "hardening", "base": base[:10], "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="sekisho-hardening-") as tmp:
        folder = Path(tmp)
        for vendor_url in start_fake(0.0, record=str(folder / "received.jsonl")):
            if args.stall_only:
                out["stall"] = stall(deploy(folder / "builtin", vendor_url, None), args.stall_kb)
                break
            received = Recording(folder / "received.jsonl")
            print("leaks, built-in policy:", flush=True)
            builtin = deploy(folder / "builtin", vendor_url, None)
            out["leaks"] = leak_sweep(builtin, received, not args.skip_cli)
            print("leaks, baseline: a policy that allows everything:", flush=True)
            out["leaks_allow_all"] = leak_sweep(deploy(folder / "allow", vendor_url, ALLOW_ALL), received,
                                                not args.skip_cli)
            print("stall:", flush=True)
            out["stall"] = stall(builtin, args.stall_kb)
        if args.stall_only:
            print(json.dumps(out, ensure_ascii=False))
            return
        print(f"Word files, {base[:10]} (then) and now:", flush=True)
        out["word"] = word_files(folder, base)
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()

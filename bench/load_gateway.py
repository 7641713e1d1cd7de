"""Load on sekisho's OpenAI-compatible gateway against the same load sent straight to the model
server it fronts, in one run: how much of the model server's concurrency sekisho passes through.

    python bench/load_gateway.py [--clients 1,10,50,100] [--seconds 15] [--delay 1.0]
                                 [--scenarios chat,chat-stream,rag,rag-stream,rag-extractive]
                                 [--workers 1] [--query-cache 0]

The model server is scripts/fake_openai_server.py on loopback: it answers after --delay seconds
and takes any number of requests at once (as vLLM or a vendor endpoint does). sekisho
(`sekisho serve`, its own process, --workers processes) fronts it as backend "fake" (declared
local, so nothing is masked) over the sample city notices. Scenarios, each at every client count:

- chat, chat-stream: /v1/chat/completions, model "fake", direct and through sekisho (governed:
  scanned, audited with fsync; streamed: every sentence checked before release).
- rag, rag-stream: model "sekisho-rag/fake": retrieval, the grounded prompt, the model, the
  faithfulness check. Its direct counterpart is the same chat request sent to the model server.
- rag-extractive: "sekisho-rag/extractive" (no model server), against KnowledgeBase.search alone
  in this process over the same store with as many threads, same questions, same seconds.

Questions rotate over the 54 of bench/city_questions.tsv and city_paraphrases.tsv; --query-cache 0
(the default) turns off the query-embedding cache on both sides, so repeats are not free.
Reports req/s, p50/p95/p99 (whole response, streams to their last byte), errors and the server's
resident memory; last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def questions() -> list[str]:
    out = []
    for name in ("city_questions.tsv", "city_paraphrases.tsv"):
        for line in (REPO / "bench" / name).read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                out.append(line.split("\t")[0])
    return out


QUESTIONS = questions()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(latencies: list[float], errors: dict[str, int], elapsed: float) -> dict:
    return {"ok": len(latencies), "errors": sum(errors.values()), "error_kinds": errors,
            "rps": round(len(latencies) / elapsed, 2),
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
            "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1)}


async def http_load(url: str, key: str | None, *, clients: int, seconds: float, model: str, stream: bool) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=300.0) as client:

        async def worker(i: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                q = QUESTIONS[(i * 7 + n) % len(QUESTIONS)]
                n += 1
                body = {"model": model, "messages": [{"role": "user", "content": q}], "stream": stream}
                started = time.perf_counter()
                try:
                    if stream:
                        async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                            text = "".join([chunk async for chunk in r.aiter_text()])
                            ok = r.status_code == 200 and text.rstrip().endswith("[DONE]") and "[error" not in text
                            label = str(r.status_code) if r.status_code != 200 else "incomplete"
                    else:
                        r = await client.post("/v1/chat/completions", json=body)
                        ok, label = r.status_code == 200, str(r.status_code)
                except httpx.HTTPError as exc:
                    ok, label = False, type(exc).__name__
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors[label] = errors.get(label, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    return summary(latencies, errors, elapsed)


def search_load(config: Path, *, clients: int, seconds: float) -> dict:
    """KnowledgeBase.search alone, from `clients` threads, over the served store."""
    from sekisho.config import load_settings
    from sekisho.retrieval import open_knowledge_base

    kb = open_knowledge_base(load_settings(config))
    kb.search(QUESTIONS[0], k=5)  # load the embedder outside the timing, as the server has
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker(i: int) -> None:
        n = 0
        mine = []
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            kb.search(QUESTIONS[(i * 7 + n) % len(QUESTIONS)], k=5)
            mine.append(time.perf_counter() - started)
            n += 1
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    kb.close()
    return summary(latencies, {}, elapsed)


def rss_mb(pids: list[int], field: str = "VmRSS") -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return round(total / 1024, 1)


def server_pids(root: int) -> list[int]:
    """The server and its worker processes."""
    pids = [root]
    for child in Path("/proc").iterdir():
        if child.name.isdigit():
            try:
                ppid = int(next(line.split()[1] for line in (child / "status").read_text().splitlines()
                                if line.startswith("PPid:")))
            except (OSError, StopIteration, ValueError):
                continue
            if ppid == root:
                pids.append(int(child.name))
    return pids


def wait_for(url: str, headers: dict, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url, headers=headers, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{url} did not come up: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,10,50,100")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--scenarios", default="chat,chat-stream,rag,rag-stream,rag-extractive")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--query-cache", type=int, default=0)
    parser.add_argument("--embedder", default="e5-small")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    known = {"chat", "chat-stream", "rag", "rag-stream", "rag-extractive"}
    if not set(wanted) <= known:
        parser.error(f"--scenarios: choose from {', '.join(sorted(known))}")

    folder = Path(tempfile.mkdtemp(prefix="sekisho-load-"))
    fake_port, port = free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    config = folder / "sekisho.toml"
    config.write_text(
        f'[store]\npath = "kb.db"\n[retrieval]\nembedder = "{args.embedder}"\nquery_cache = {args.query_cache}\n'
        '[audit]\npath = "audit.db"\nkey_path = "signing.key"\n'
        f"[server]\nrate_limit_per_minute = 100000000\nworkers = {args.workers}\n"
        '[models]\ndefault = "extractive"\n[models.backends.extractive]\nkind = "extractive"\n'
        f'[models.backends.fake]\nkind = "openai"\nbase_url = "{fake_url}/v1"\nmodel = "fake"\nlocal = true\n'
        f"timeout_s = {max(30.0, args.delay * 10)}\n",
        encoding="utf-8")
    env = dict(os.environ)
    bin_dir = Path(sys.executable).parent
    sekisho = [str(bin_dir / "sekisho"), "--config", str(config)]
    subprocess.run([*sekisho, "ingest", str(REPO / "samples" / "city")], env=env, check=True, stdout=subprocess.DEVNULL)
    key = subprocess.run([*sekisho, "keys", "create", "--role", "user", "--name", "load"], env=env, check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    fake_log, server_log = folder / "fake.log", folder / "server.log"
    fake = subprocess.Popen([sys.executable, str(REPO / "scripts" / "fake_openai_server.py"), "--port", str(fake_port),
                             "--delay", str(args.delay), "--model", "fake"], stdout=subprocess.DEVNULL,
                            stderr=fake_log.open("wb"))
    server = subprocess.Popen([*sekisho, "serve", "--port", str(port), "--workers", str(args.workers)], env=env,
                              stdout=subprocess.DEVNULL, stderr=server_log.open("wb"))
    url = f"http://127.0.0.1:{port}"
    results: dict = {}
    try:
        wait_for(fake_url + "/v1/models", {}, fake, fake_log)
        wait_for(url + "/v1/models", {"Authorization": f"Bearer {key}"}, server, server_log)
        # Warm every worker: embedder loaded, backends opened.
        asyncio.run(http_load(url, key, clients=2 * args.workers, seconds=2, model="sekisho-rag/fake", stream=False))
        for clients in counts:
            row: dict = {}
            for scenario in wanted:
                stream = scenario.endswith("-stream")
                if scenario == "rag-extractive":
                    direct = search_load(config, clients=clients, seconds=args.seconds)
                    governed = asyncio.run(http_load(url, key, clients=clients, seconds=args.seconds,
                                                     model="sekisho-rag/extractive", stream=False))
                else:
                    model = "sekisho-rag/fake" if scenario.startswith("rag") else "fake"
                    direct = asyncio.run(http_load(fake_url, None, clients=clients, seconds=args.seconds,
                                                   model="fake", stream=stream))
                    governed = asyncio.run(http_load(url, key, clients=clients, seconds=args.seconds, model=model,
                                                     stream=stream))
                entry = {"direct": direct, "sekisho": governed,
                         "ratio": round(governed["rps"] / direct["rps"], 3) if direct["rps"] else None,
                         "added_p50_ms": round(governed["p50_ms"] - direct["p50_ms"], 1),
                         "server_rss_mb": rss_mb(server_pids(server.pid))}
                row[scenario] = entry
                base = "search alone" if scenario == "rag-extractive" else "direct"
                print(f"{clients:3d} clients {scenario:15s} {base:12s} {direct['rps']:7.1f}/s p50 {direct['p50_ms']:7.1f}"
                      f" | sekisho {governed['rps']:7.1f}/s p50 {governed['p50_ms']:7.1f} p95 {governed['p95_ms']:7.1f}"
                      f" p99 {governed['p99_ms']:7.1f} err {governed['errors']} {governed['error_kinds'] or ''}"
                      f" | x{entry['ratio']} +{entry['added_p50_ms']} ms | rss {entry['server_rss_mb']} MB",
                      flush=True)
            results[clients] = row
        peak = rss_mb(server_pids(server.pid), "VmHWM")
    finally:
        for process in (server, fake):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        problems = [line for line in server_log.read_text(errors="replace").splitlines()
                    if "ERROR" in line or "Traceback" in line]
        if problems:
            print("server log:", *problems[-20:], sep="\n  ", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({"bench": "load_gateway", "delay_s": args.delay, "seconds": args.seconds, "workers": args.workers,
                      "query_cache": args.query_cache, "cpus": os.cpu_count(), "server_peak_rss_mb": peak,
                      "results": results}, ensure_ascii=False))


if __name__ == "__main__":
    main()

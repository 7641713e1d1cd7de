"""Load on the OpenAI-compatible request_path: N concurrent clients for S seconds against
/v1/chat/completions on 127.0.0.1, with the extractive backend (plain chat) and with retrieval
(sekisho-rag/extractive over the sample city notices). Every request passes the request path (guards,
audit append with fsync). The server runs as its own process (`sekisho serve`), so client and
server do not share an interpreter.

    python bench/load_gateway.py [--clients 50] [--seconds 60] [--corpus samples/city]

Reports requests/s, p50/p95/p99 latency and errors per scenario, and the ratio against a
baseline in the same run (GET /v1/models: authentication and routing, no model, no audit).
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "住民票の写しの交付手数料はいくらですか？",
    "粗大ごみのソファーを出すときの手数料はいくらですか？",
    "転入届はいつまでに出せばよいですか？",
    "図書館の休館日はいつですか？",
    "印鑑登録できる印鑑の大きさは？",
    "3歳未満の子どもの児童手当の月額はいくらですか？",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def run_scenario(url: str, key: str, *, clients: int, seconds: float, make_request) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits,
                                 timeout=120.0) as client:

        async def worker(i: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                method, path, body = make_request(i, n)
                n += 1
                started = time.perf_counter()
                try:
                    r = await client.request(method, path, json=body)
                    ok = r.status_code == 200
                    label = str(r.status_code)
                except httpx.HTTPError as exc:
                    ok, label = False, type(exc).__name__
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors[label] = errors.get(label, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies) + sum(errors.values()),
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "seconds": round(elapsed, 2),
        "rps": round(len(latencies) / elapsed, 2),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
    }


def chat(model: str):
    def make(i: int, n: int):
        q = QUESTIONS[(i + n) % len(QUESTIONS)]
        return "POST", "/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": q}]}

    return make


def models(i: int, n: int):
    return "GET", "/v1/models", None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--corpus", type=Path, default=REPO / "samples" / "city")
    parser.add_argument("--embedder", default="e5-small", help="retrieval.embedder for the served knowledge base")
    parser.add_argument("--scenarios", default="chat,rag", help="comma-separated: chat, rag (the baseline always runs)")
    args = parser.parse_args()
    wanted = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    if not wanted <= {"chat", "rag"}:
        parser.error("--scenarios: choose from chat, rag")
    if args.clients < 1 or args.clients > 500 or args.seconds <= 0 or args.seconds > 600:
        parser.error("--clients 1..500 and --seconds up to 600 keep the run bounded")

    folder = Path(tempfile.mkdtemp(prefix="sekisho-load-"))
    config = folder / "sekisho.toml"
    config.write_text(
        f'[store]\npath = "kb.db"\n[retrieval]\nembedder = "{args.embedder}"\n'
        '[audit]\npath = "audit.db"\nkey_path = "signing.key"\n'
        "[server]\nrate_limit_per_minute = 100000000\n",
        encoding="utf-8")
    env = dict(os.environ)
    sekisho = [str(Path(sys.executable).parent / "sekisho")]  # the installed command, as operators run it
    subprocess.run([*sekisho, "--config", str(config), "ingest", str(args.corpus)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    created = subprocess.run([*sekisho, "--config", str(config), "keys", "create", "--role", "user",
                              "--name", "load"], env=env, check=True, capture_output=True, text=True)
    key = created.stdout.strip().splitlines()[-1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_log = (folder / "server.log").open("wb")
    server = subprocess.Popen([*sekisho, "--config", str(config), "serve", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=server_log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {(folder / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        # Warm the embedder and the backend before timing.
        httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=120,
                   json={"model": "sekisho-rag/extractive", "messages": [{"role": "user", "content": QUESTIONS[0]}]})
        results = {}
        plan = [("baseline_models", models)]
        if "chat" in wanted:
            plan.append(("chat_extractive", chat("extractive")))
        if "rag" in wanted:
            plan.append(("rag_extractive", chat("sekisho-rag/extractive")))
        for name, make in plan:
            results[name] = asyncio.run(run_scenario(url, key, clients=args.clients, seconds=args.seconds,
                                                     make_request=make))
            r = results[name]
            print(f"{name:17s} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms  "
                  f"p99 {r['p99_ms']:7.1f} ms  ok {r['ok']}  errors {r['errors']} {r['error_kinds'] or ''}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        server_log.close()
        problems = [line for line in (folder / "server.log").read_text(errors="replace").splitlines()
                    if "ERROR" in line or "Traceback" in line or "WARNING" in line]
        if problems:
            print("server log:", *problems[-20:], sep="\n  ", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
    base = results["baseline_models"]["rps"] or 1.0
    for name in set(results) - {"baseline_models"}:
        results[name]["rps_vs_baseline"] = round(results[name]["rps"] / base, 4)
    print(json.dumps({"bench": "load_gateway", "clients": args.clients, "seconds": args.seconds,
                      "embedder": args.embedder, "cpus": os.cpu_count(), **results}, ensure_ascii=False))


if __name__ == "__main__":
    main()

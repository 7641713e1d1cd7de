"""Two (or more) worker processes under 60 s of mixed load: plain chat, retrieval answers and
uploads at once against one store, one audit log and one access database. Then: does the audit
chain verify, does every request that returned 200 have its record, was every upload ingested?

    python bench/workers_mixed.py [--workers 2] [--seconds 60] [--clients 16]

Chat goes to a loopback model server with a 0.5 s delay (scripts/fake_openai_server.py), retrieval
answers to the extractive answerer over the sample city notices, uploads are the sample files sent
again and again by two clients. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
CITY = REPO / "samples" / "city"
sys.path.insert(0, str(REPO / "bench"))
from load_gateway import QUESTIONS, rss_mb, server_pids, wait_for  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def mixed(url: str, keys: dict[str, str], clients: int, seconds: float) -> dict:
    counts = {"chat": 0, "rag": 0, "upload": 0, "errors": 0}
    seqs: list[int] = []
    jobs: list[str] = []
    deadline = time.perf_counter() + seconds
    files = sorted(CITY.iterdir())
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        user = {"Authorization": f"Bearer {keys['user']}"}
        admin = {"Authorization": f"Bearer {keys['admin']}"}

        async def ask(i: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                kind = "rag" if (i + n) % 2 else "chat"
                model = "sekisho-rag/extractive" if kind == "rag" else "fake"
                q = QUESTIONS[(i * 7 + n) % len(QUESTIONS)]
                n += 1
                r = await client.post("/v1/chat/completions", headers=user,
                                      json={"model": model, "messages": [{"role": "user", "content": q}]})
                if r.status_code == 200:
                    counts[kind] += 1
                    seqs.append(r.json()["sekisho"]["audit_seq"])
                else:
                    counts["errors"] += 1

        async def upload(i: int) -> None:
            n = i
            while time.perf_counter() < deadline:
                path = files[n % len(files)]
                n += 1
                r = await client.post("/api/documents", headers=admin, files=[("files", (path.name, path.read_bytes()))])
                if r.status_code == 202:
                    counts["upload"] += 1
                    jobs.append(r.json()["id"])
                else:
                    counts["errors"] += 1
                await asyncio.sleep(1.0)

        await asyncio.gather(*(ask(i) for i in range(clients)), upload(0), upload(3))
    return {"counts": counts, "seqs": seqs, "jobs": jobs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sekisho-workers-"))
    fake_port, port = free_port(), free_port()
    config = folder / "sekisho.toml"
    config.write_text(
        '[store]\npath = "kb.db"\n[retrieval]\nembedder = "e5-small"\n'
        '[audit]\npath = "audit.db"\nkey_path = "signing.key"\n[server]\nrate_limit_per_minute = 100000000\n'
        '[models.backends.extractive]\nkind = "extractive"\n'
        f'[models.backends.fake]\nkind = "openai"\nbase_url = "http://127.0.0.1:{fake_port}/v1"\nmodel = "fake"\n'
        'local = true\n', encoding="utf-8")
    sekisho = [str(Path(sys.executable).parent / "sekisho"), "--config", str(config)]
    subprocess.run([*sekisho, "ingest", str(CITY)], check=True, stdout=subprocess.DEVNULL)
    keys = {role: subprocess.run([*sekisho, "keys", "create", "--role", role], check=True, capture_output=True,
                                 text=True).stdout.strip().splitlines()[-1] for role in ("admin", "user")}
    fake_log, server_log = folder / "fake.log", folder / "server.log"
    fake = subprocess.Popen([sys.executable, str(REPO / "scripts" / "fake_openai_server.py"), "--port", str(fake_port),
                             "--delay", "0.5", "--model", "fake"], stdout=subprocess.DEVNULL, stderr=fake_log.open("wb"))
    server = subprocess.Popen([*sekisho, "serve", "--port", str(port), "--workers", str(args.workers)],
                              stdout=subprocess.DEVNULL, stderr=server_log.open("wb"), start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"http://127.0.0.1:{fake_port}/v1/models", {}, fake, fake_log)
        wait_for(url + "/api/me", {"Authorization": f"Bearer {keys['user']}"}, server, server_log)
        started = time.perf_counter()
        done = asyncio.run(mixed(url, keys, args.clients, args.seconds))
        elapsed = time.perf_counter() - started
        deadline = time.monotonic() + 300
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys['admin']}"}, timeout=60) as admin:
            while not all(admin.get(f"/api/jobs/{j}").json()["status"] in ("done", "failed") for j in done["jobs"]):
                if time.monotonic() > deadline:
                    break
                time.sleep(1)
            ingested = sum(admin.get(f"/api/jobs/{j}").json()["status"] == "done" for j in done["jobs"])
        rss = rss_mb(server_pids(server.pid))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
        fake.terminate()
        fake.wait(10)
    verify = subprocess.run([*sekisho, "audit", "verify"], capture_output=True, text=True)
    from sekisho.audit.log import AuditLog

    log = AuditLog(folder / "audit.db")
    recorded = {e.seq for kind in ("chat", "ask") for e in log.query(kind=kind, limit=1_000_000)}
    ingest_records = len(log.query(kind="document.ingest", limit=1_000_000))
    log.close()
    missing = [s for s in done["seqs"] if s not in recorded]
    result = {"bench": "workers_mixed", "workers": args.workers, "seconds": round(elapsed, 1), "clients": args.clients,
              **done["counts"], "rps": round((done["counts"]["chat"] + done["counts"]["rag"]) / elapsed, 2),
              "uploads_ingested": ingested, "ingest_records": ingest_records, "audit_verify": verify.returncode == 0,
              "answers_without_record": len(missing), "server_rss_mb": rss}
    print(f"{args.workers} workers, {elapsed:.0f} s: chat {done['counts']['chat']}, rag {done['counts']['rag']}, "
          f"uploads {done['counts']['upload']} ({ingested} ingested, {ingest_records} audited), errors "
          f"{done['counts']['errors']}; audit verify {'ok' if verify.returncode == 0 else verify.stderr.strip()}; "
          f"answers without a record: {len(missing)}; rss {rss} MB")
    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""kill -9 at random points, then `sekisho check` (#19). Seeded and bounded: the same points each
run, a few seconds each.

- `sekisho ingest` killed mid-run, again and again: the store is whole after every kill, and a
  run to the end leaves every document in it.
- `sekisho serve` killed while clients upload and ask: after every kill the deployment checks
  clean, every request that was answered has its audit record (the record is durable before the
  answer leaves), and every upload that was acknowledged (202) is ingested after the restarts.
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time

import httpx
import pytest

from sekisho.audit.log import AuditLog
from server_fixtures.process import SEKISHO, Deployment
from server_fixtures.support import CITY

SEED = 19
ROUNDS = 3


def _check(deployment: Deployment) -> subprocess.CompletedProcess:
    checked = deployment.run("check")
    assert checked.returncode == 0, f"sekisho check failed:\n{checked.stdout}\n{checked.stderr}"
    return checked


@pytest.mark.slow
def test_ingest_killed_at_random_points_leaves_a_whole_store(tmp_path):
    rng = random.Random(SEED)
    deployment = Deployment.create(tmp_path)
    for _ in range(ROUNDS):
        process = subprocess.Popen([SEKISHO, "--config", str(deployment.config), "ingest", str(CITY)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 4.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        _check(deployment)
    finished = deployment.run("ingest", str(CITY))
    assert finished.returncode == 0, finished.stderr
    checked = _check(deployment)
    assert f"{len(list(CITY.iterdir()))} documents" in checked.stdout


@pytest.mark.slow
def test_serve_killed_at_random_points_loses_nothing_it_acknowledged(tmp_path):
    rng = random.Random(SEED)
    deployment = Deployment.create(tmp_path, server_toml="shutdown_grace_s = 1")
    assert deployment.run("ingest", str(CITY / "juminhyo.md")).returncode == 0
    key = deployment.key("admin")
    headers = {"Authorization": f"Bearer {key}"}
    answered: list[int] = []  # audit_seq of every governed answer a client received
    acknowledged: list[str] = []  # job ids answered 202
    for round_ in range(ROUNDS):
        served = deployment.serve(key)
        stop = threading.Event()

        def load(n: int) -> None:
            with httpx.Client(base_url=served.url, headers=headers, timeout=30) as client:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        if i % 3 == 0:
                            r = client.post("/api/documents", files=[(
                                "files", (f"r{round_}-c{n}-{i}.txt", f"第{round_}回 {n}-{i} の通知です。".encode()))])
                            if r.status_code == 202:
                                acknowledged.append(r.json()["id"])
                        else:
                            model = "sekisho-rag/extractive" if i % 2 else "extractive"
                            r = client.post("/v1/chat/completions", json={
                                "model": model, "messages": [{"role": "user", "content": "住民票の写しの手数料は？"}]})
                            if r.status_code == 200:
                                answered.append(r.json()["sekisho"]["audit_seq"])
                    except httpx.HTTPError:
                        return  # the server is gone: whatever had no answer was never acknowledged

        clients = [threading.Thread(target=load, args=(n,)) for n in range(3)]
        for client in clients:
            client.start()
        time.sleep(rng.uniform(1.0, 4.0))
        served.kill()
        stop.set()
        for client in clients:
            client.join(60)
        _check(deployment)
    assert answered and acknowledged, "the load never got an answer: nothing was tested"
    served = deployment.serve(key)  # the last start resumes whatever uploads were interrupted
    try:
        deadline = time.monotonic() + 120
        pending = set(acknowledged)
        while pending:
            assert time.monotonic() < deadline, f"uploads not ingested after the restart: {sorted(pending)[:5]}"
            pending = {j for j in pending
                       if httpx.get(f"{served.url}/api/jobs/{j}", headers=headers).json()["status"] != "done"}
            time.sleep(0.5)
    finally:
        served.stop()
    _check(deployment)
    log = AuditLog(tmp_path / "audit.db")
    try:
        missing = [seq for seq in answered if (entry := log.get(seq)) is None or entry.kind not in ("chat", "ask")]
    finally:
        log.close()
    assert not missing, f"answered requests without their audit record: {missing[:10]}"

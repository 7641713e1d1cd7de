"""`sekisho serve --workers 2`: two processes, one store, one audit log, one access database.
Mixed chat, retrieval answers and uploads at once; afterwards the audit chain verifies, every
answer that returned 200 has its record, every upload was ingested once, a key revoked while
serving is refused by both workers, and a review is decided once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sekisho.audit.log import AuditLog
from server_fixtures.support import CITY, assert_uploads_ingested_once

pytestmark = [pytest.mark.server, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("workers")
    config = folder / "sekisho.toml"
    config.write_text('[store]\npath = "kb.db"\n[retrieval]\nembedder = "use-m3"\n'
                      '[audit]\npath = "audit.db"\nkey_path = "signing.key"\n'
                      '[server]\nrate_limit_per_minute = 100000\n', encoding="utf-8")
    sekisho = [str(Path(sys.executable).parent / "sekisho"), "--config", str(config)]
    subprocess.run([*sekisho, "ingest", str(CITY / "juminhyo.md")], check=True, stdout=subprocess.DEVNULL)
    keys = {role: subprocess.run([*sekisho, "keys", "create", "--role", role], check=True, capture_output=True,
                                 text=True).stdout.strip().splitlines()[-1] for role in ("admin", "user", "reviewer")}
    port = free_port()
    server = subprocess.Popen([*sekisho, "serve", "--port", str(port), "--workers", "2"], stdout=subprocess.DEVNULL,
                              stderr=(folder / "server.log").open("wb"), start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(url + "/api/me", headers={"Authorization": f"Bearer {keys['admin']}"}).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, (folder / "server.log").read_text()[-2000:]
        time.sleep(0.3)
    # The first answer says one process is up; the tests need both listening before they start.
    while len({pid for pid, _ in _pids_answering(url, keys["admin"])}) < 2:
        assert server.poll() is None and time.monotonic() < deadline, (folder / "server.log").read_text()[-2000:]
        time.sleep(0.3)
    yield {"url": url, "keys": keys, "folder": folder, "sekisho": sekisho}
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(60)


def _pids_answering(url: str, key: str, n: int = 200) -> set[str]:
    """Which worker processes answered (the server says so in a header), each request on a new
    connection so that the kernel hands it to whichever worker accepts first."""
    pids = set()
    for _ in range(n):
        response = httpx.get(url + "/api/me", headers={"Authorization": f"Bearer {key}", "Connection": "close"})
        assert response.status_code in (200, 401)
        pids.add((response.headers.get("x-sekisho-worker", ""), response.status_code))
        if len({pid for pid, _ in pids}) == 2:
            break
    return pids


def test_mixed_load_on_two_workers_loses_nothing(two_workers):
    url, keys = two_workers["url"], two_workers["keys"]
    assert len({pid for pid, _ in _pids_answering(url, keys["user"])}) == 2  # both processes serve

    async def load() -> tuple[list[int], list[str]]:
        seqs: list[int] = []
        jobs: list[str] = []
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            user = {"Authorization": f"Bearer {keys['user']}"}
            admin = {"Authorization": f"Bearer {keys['admin']}"}

            async def chat(i: int) -> None:
                for n in range(6):
                    model = "sekisho-rag/extractive" if (i + n) % 2 else "extractive"
                    r = await client.post("/v1/chat/completions", headers=user, json={
                        "model": model, "messages": [{"role": "user", "content": f"住民票の写しの手数料は？ ({i}-{n})"}]})
                    assert r.status_code == 200, r.text
                    seqs.append(r.json()["sekisho"]["audit_seq"])

            async def upload(i: int) -> None:
                # Both uploaders send every file: each is ingested twice, by whichever worker claims it.
                for path in sorted(CITY.iterdir())[::1 if i == 0 else -1]:
                    r = await client.post("/api/documents", headers=admin, files=[("files", (path.name, path.read_bytes()))])
                    assert r.status_code == 202, r.text
                    jobs.append(r.json()["id"])

            await asyncio.gather(*(chat(i) for i in range(8)), upload(0), upload(1))
        return seqs, jobs

    seqs, jobs = asyncio.run(load())
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys['admin']}"}, timeout=60) as admin:
        deadline = time.monotonic() + 180
        while not all(admin.get(f"/api/jobs/{j}").json()["status"] in ("done", "failed") for j in jobs):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert all(admin.get(f"/api/jobs/{j}").json()["status"] == "done" for j in jobs)
        documents = admin.get("/api/documents").json()["documents"]
    # Every uploaded file is one document however often it came (upload/<name>), plus the CLI's.
    assert sorted(d["path"] for d in documents) == sorted(
        [f"upload/{p.name}" for p in CITY.iterdir()] + [str((CITY / "juminhyo.md").resolve())])
    result = subprocess.run([*two_workers["sekisho"], "audit", "verify"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    log = AuditLog(two_workers["folder"] / "audit.db")
    recorded = {e.seq: e for kind in ("chat", "ask") for e in log.query(kind=kind, limit=10_000)}
    assert len(seqs) == 48 and all(seq in recorded and recorded[seq].record["status"] == "ok" for seq in seqs)
    # Whichever worker is scraped, /metrics sums both: the 48 governed requests, not its share.
    for _ in range(4):
        scraped = httpx.get(f"{url}/metrics", timeout=30).text
        governed = sum(s.value for f in text_string_to_metric_families(scraped) for s in f.samples
                       if s.name == "sekisho_governed_requests_total")
        assert governed == len(recorded) == 48
    assert_uploads_ingested_once(log, jobs)
    log.close()


def test_a_key_revoked_while_serving_is_refused_by_both_workers(two_workers):
    url = two_workers["url"]
    secret = subprocess.run([*two_workers["sekisho"], "keys", "create", "--role", "user"], check=True,
                            capture_output=True, text=True).stdout.strip().splitlines()[-1]
    assert {status for _, status in _pids_answering(url, secret)} == {200}
    key_id = secret.removeprefix("sk-skh-").split("_")[0]
    subprocess.run([*two_workers["sekisho"], "keys", "revoke", key_id], check=True, capture_output=True)
    answers = _pids_answering(url, secret)
    assert len({pid for pid, _ in answers}) == 2 and {status for _, status in answers} == {401}


def test_a_review_is_decided_once_whichever_worker_is_asked(two_workers):
    url, keys = two_workers["url"], two_workers["keys"]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys['user']}"}, timeout=60) as client:
        # For external use: the built-in policy holds the answer for a reviewer.
        held = client.post("/v1/chat/completions", json={
            "model": "sekisho-rag/extractive", "sekisho": {"purpose": "external"},
            "messages": [{"role": "user", "content": "住民票の写しの交付手数料は？"}]})
    assert held.status_code == 200 and held.json()["sekisho"]["status"] == "held"
    review_id = held.json()["sekisho"]["review_id"]

    async def decide_many() -> list[int]:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {keys['reviewer']}"},
                                     timeout=60) as client:
            return [r.status_code for r in await asyncio.gather(
                *(client.post(f"/api/reviews/{review_id}/approve", json={"note": f"#{i}"}) for i in range(8)))]

    statuses = asyncio.run(decide_many())
    assert sorted(statuses) == [200] + [409] * 7
    log = AuditLog(two_workers["folder"] / "audit.db")
    decisions = [e for e in log.query(kind="review.decision", limit=100) if e.record["review_id"] == review_id]
    assert len(decisions) == 1
    log.close()


def test_json_logs_carry_the_request_id_of_the_audit_record(two_workers):
    url, keys = two_workers["url"], two_workers["keys"]
    r = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {keys['user']}",
                                                          "X-Request-ID": "trace-0123456789"},
                   json={"model": "extractive", "messages": [{"role": "user", "content": "こんにちは"}]}, timeout=60)
    assert r.status_code == 200 and r.headers["X-Request-ID"] == "trace-0123456789"
    log = AuditLog(two_workers["folder"] / "audit.db")
    assert log.get(r.json()["sekisho"]["audit_seq"]).record["request_id"] == "trace-0123456789"
    log.close()
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in (two_workers["folder"] / "server.log").read_text().splitlines()
                 if line.strip()]  # every line is one JSON object
        access = [e for e in lines if e.get("request_id") == "trace-0123456789" and e["logger"] == "sekisho.access"]
        if access or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    (line,) = access
    assert (line["method"], line["path"], line["status"]) == ("POST", "/v1/chat/completions", 200)
    assert line["worker"] == r.headers["X-Sekisho-Worker"] and line["duration_ms"] >= 0
    assert keys["user"] not in (two_workers["folder"] / "server.log").read_text()


def test_quota_counts_hold_across_both_workers(two_workers):
    """A key allowed 12 requests a minute sends 20 at once, each on a new connection: exactly 12 are
    served, and both worker processes refuse the rest, whichever counted the 12; then both workers
    report the same use, the tokens being what the served answers used."""
    url = two_workers["url"]
    secret = subprocess.run([*two_workers["sekisho"], "keys", "create", "--role", "user", "--requests-per-minute", "12"],
                            check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {secret}", "Connection": "close"}
    if time.time() % 60 > 40:  # the count is per calendar minute: start the burst well inside one
        time.sleep(61 - time.time() % 60)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
            return await asyncio.gather(*(client.post("/v1/chat/completions", json={
                "model": "extractive", "messages": [{"role": "user", "content": f"こんにちは ({i})"}]}) for i in range(20)))

    answers = asyncio.run(burst())
    served = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 429]
    assert len(served) == 12 and len(refused) == 8
    # The kernel may hand a whole burst to one process. Whichever did, the other must refuse too:
    # it counted none of the 12 itself, so only the shared count can make it say no.
    for _ in range(200):
        if len({r.headers["x-sekisho-worker"] for r in refused}) == 2:
            break
        again = httpx.post(url + "/v1/chat/completions", headers=headers, json={
            "model": "extractive", "messages": [{"role": "user", "content": "こんにちは"}]})
        assert again.status_code == 429, again.text
        refused.append(again)
    assert len({r.headers["x-sekisho-worker"] for r in refused}) == 2
    assert all("(requests per minute) 12 に達しました" in r.json()["error"]["message"] for r in refused)
    tokens = sum(r.json()["usage"]["total_tokens"] for r in served)
    reports = {}
    for _ in range(200):
        response = httpx.get(url + "/api/me/usage", headers=headers)
        reports[response.headers["x-sekisho-worker"]] = response.json()
        if len(reports) == 2:
            break
    assert len(reports) == 2
    for usage in reports.values():  # (the minute may have turned by now; the day has not)
        assert [q["used"] for q in usage["quotas"][1:]] == [tokens, tokens] and usage["requests_today"] == 12

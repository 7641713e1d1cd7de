"""Two `sekisho serve` processes, one PostgreSQL: the promises several servers behind a load
balancer rely on. Mixed chat and uploads on both at once leave one valid audit chain with every
answered request's record; the same files uploaded to both servers end as one document each; a
revoked key is refused by both within a second; a review is decided once whichever server
is asked."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from conftest import free_port, schema_url
from sekisho.audit.log import AuditLog
from server_fixtures.support import CITY, assert_uploads_ingested_once

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.postgres]


def _start(sekisho: list[str], folder: Path, name: str, key: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = (folder / f"{name}.log").open("wb")
    server = subprocess.Popen([*sekisho, "serve", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=log,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(url + "/api/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, (folder / f"{name}.log").read_text()[-2000:]
        time.sleep(0.3)


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory, postgres_server):
    schema = f"s_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    database = schema_url(postgres_server, schema)
    folder = tmp_path_factory.mktemp("servers")
    config = folder / "sekisho.toml"
    # One configuration for both, as two hosts would share it; the signing key is shared too
    # (checkpoints must verify under one organisation key).
    config.write_text(f'[store]\nurl = "{database}"\nuploads = "shared/uploads"\n[retrieval]\nembedder = "use-m3"\n'
                      '[audit]\nkey_path = "signing.key"\n[server]\nrate_limit_per_minute = 100000\n',
                      encoding="utf-8")
    sekisho = [str(Path(sys.executable).parent / "sekisho"), "--config", str(config)]
    subprocess.run([*sekisho, "ingest", str(CITY / "juminhyo.md")], check=True, stdout=subprocess.DEVNULL)
    keys = {role: subprocess.run([*sekisho, "keys", "create", "--role", role], check=True, capture_output=True,
                                 text=True).stdout.strip().splitlines()[-1] for role in ("admin", "user", "reviewer")}
    servers = [_start(sekisho, folder, name, keys["admin"]) for name in ("a", "b")]
    yield {"urls": [url for _, url in servers], "keys": keys, "folder": folder, "sekisho": sekisho,
           "database": database}
    for server, _ in servers:
        os.killpg(server.pid, signal.SIGTERM)
    for server, _ in servers:
        server.wait(60)
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_mixed_load_on_two_servers_loses_nothing(two_servers):
    urls, keys = two_servers["urls"], two_servers["keys"]

    async def load() -> tuple[list[int], list[tuple[str, str]]]:
        seqs: list[int] = []
        jobs: list[tuple[str, str]] = []
        user = {"Authorization": f"Bearer {keys['user']}"}
        admin = {"Authorization": f"Bearer {keys['admin']}"}
        async with httpx.AsyncClient(timeout=120) as client:

            async def chat(i: int) -> None:
                for n in range(6):
                    r = await client.post(urls[(i + n) % 2] + "/v1/chat/completions", headers=user, json={
                        "model": "sekisho-rag/extractive",
                        "messages": [{"role": "user", "content": f"住民票の写しの手数料は？ ({i}-{n})"}]})
                    assert r.status_code == 200, r.text
                    seqs.append(r.json()["sekisho"]["audit_seq"])

            async def upload(url: str) -> None:
                # Every file goes to both servers: each is ingested twice, once by each.
                for path in sorted(CITY.iterdir()):
                    r = await client.post(url + "/api/documents", headers=admin,
                                          files=[("files", (path.name, path.read_bytes()))])
                    assert r.status_code == 202, r.text
                    jobs.append((url, r.json()["id"]))

            await asyncio.gather(*(chat(i) for i in range(8)), *(upload(url) for url in urls))
        return seqs, jobs

    seqs, jobs = asyncio.run(load())
    headers = {"Authorization": f"Bearer {keys['admin']}"}
    with httpx.Client(headers=headers, timeout=60) as admin:
        deadline = time.monotonic() + 240
        while not all(admin.get(f"{url}/api/jobs/{j}").json()["status"] in ("done", "failed") for url, j in jobs):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert all(admin.get(f"{url}/api/jobs/{j}").json()["status"] == "done" for url, j in jobs)
        listed = [sorted(d["path"] for d in admin.get(url + "/api/documents").json()["documents"]) for url in urls]
    # The uploads waited in the folder the configuration names (a network share across hosts).
    assert (two_servers["folder"] / "shared" / "uploads").is_dir()
    assert not (two_servers["folder"] / "sekisho.uploads").exists()
    # One document per file however many servers ingested it, and both servers see the same ones.
    assert listed[0] == listed[1] == sorted([f"upload/{p.name}" for p in CITY.iterdir()] +
                                            [str((CITY / "juminhyo.md").resolve())])
    result = subprocess.run([*two_servers["sekisho"], "audit", "verify"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    log = AuditLog(two_servers["database"])
    recorded = {e.seq: e for kind in ("chat", "ask") for e in log.query(kind=kind, limit=10_000)}
    assert len(seqs) == 48 and all(seq in recorded and recorded[seq].record["status"] == "ok" for seq in seqs)
    assert_uploads_ingested_once(log, [j for _, j in jobs])
    log.close()


def test_a_revoked_key_is_refused_by_both_servers_within_a_second(two_servers):
    urls = two_servers["urls"]
    secret = subprocess.run([*two_servers["sekisho"], "keys", "create", "--role", "user"], check=True,
                            capture_output=True, text=True).stdout.strip().splitlines()[-1]
    me = {"Authorization": f"Bearer {secret}"}
    assert [httpx.get(url + "/api/me", headers=me).status_code for url in urls] == [200, 200]
    key_id = secret.removeprefix("sk-skh-").split("_")[0]
    subprocess.run([*two_servers["sekisho"], "keys", "revoke", key_id], check=True, capture_output=True)
    start = time.monotonic()
    refused: dict[str, float] = {}
    while len(refused) < 2 and time.monotonic() - start < 1.0:
        for url in urls:
            if url not in refused and httpx.get(url + "/api/me", headers=me).status_code == 401:
                refused[url] = time.monotonic() - start
    assert set(refused) == set(urls), f"still accepted after 1 s by {set(urls) - set(refused)}"


def test_a_review_is_decided_once_whichever_server_is_asked(two_servers):
    urls, keys = two_servers["urls"], two_servers["keys"]
    held = httpx.post(urls[0] + "/v1/chat/completions", headers={"Authorization": f"Bearer {keys['user']}"},
                      timeout=60, json={"model": "sekisho-rag/extractive", "sekisho": {"purpose": "external"},
                                        "messages": [{"role": "user", "content": "住民票の写しの交付手数料は？"}]})
    assert held.status_code == 200 and held.json()["sekisho"]["status"] == "held"
    review_id = held.json()["sekisho"]["review_id"]

    async def decide_many() -> list[int]:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {keys['reviewer']}"}, timeout=60) as client:
            return [r.status_code for r in await asyncio.gather(
                *(client.post(f"{urls[i % 2]}/api/reviews/{review_id}/approve", json={"note": f"#{i}"})
                  for i in range(8)))]

    assert sorted(asyncio.run(decide_many())) == [200] + [409] * 7
    log = AuditLog(two_servers["database"])
    assert len([e for e in log.query(kind="review.decision", limit=100) if e.record["review_id"] == review_id]) == 1
    log.close()

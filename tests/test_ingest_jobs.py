"""The durable upload queue: recorded before it is acknowledged, claimed once by one worker among
many, resumed after a crash; and end to end, an upload answered 202 survives kill -9."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from sekisho.db import open_database
from sekisho.ingest.jobs import JobQueue, this_worker
from server_fixtures.process import Deployment

REPO = Path(__file__).resolve().parents[1]
CITY = REPO / "samples" / "city"


@pytest.fixture
def queue(database_target, tmp_path):
    db = open_database(database_target, foreign_keys=True)
    yield JobQueue(db, tmp_path / "kb.db.uploads")
    db.close()


def test_a_job_is_durable_before_it_is_acknowledged_and_runs_in_order(queue, database_target, tmp_path):
    job = queue.submit("key:a:alice", [("一.txt", "一つ目".encode()), ("二.txt", "二つ目".encode())], tags=("人事",))
    # A second handle (another process) sees the job and its payloads on disk.
    other = JobQueue(open_database(database_target, foreign_keys=True), tmp_path / "kb.db.uploads")
    seen = other.get(job.id)
    assert seen.status == "queued" and [f.name for f in seen.files] == ["一.txt", "二.txt"] and seen.tags == ("人事",)
    first = other.claim("host:1")
    assert (first.name, first.owner, first.payload.read_bytes()) == ("一.txt", "key:a:alice", "一つ目".encode())
    assert queue.get(job.id).status == "running"
    other.finish(first, "done", document_id="doc1", chunks=3)
    second = queue.claim("host:2")
    assert second.name == "二.txt" and queue.claim("host:3") is None
    queue.finish(second, "failed", error="二.txt: not a text file")
    finished = queue.get(job.id)
    assert [(f.status, f.document_id, f.chunks, f.error) for f in finished.files] == [
        ("done", "doc1", 3, None), ("failed", None, None, "二.txt: not a text file")]
    assert finished.status == "done" and finished.finished_at is not None
    assert not (tmp_path / "kb.db.uploads" / job.id).exists()  # the spooled payloads go when the job ends


def test_many_workers_claim_each_file_exactly_once(queue, database_target, tmp_path):
    queue.submit("key:a:alice", [(f"{n}.txt", b"x") for n in range(60)])
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        mine = JobQueue(open_database(database_target, foreign_keys=True), tmp_path / "kb.db.uploads")
        while (c := mine.claim(f"host:{n}")) is not None:
            with lock:
                claimed.append(c.name)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(f"{n}.txt" for n in range(60))


def test_files_of_a_dead_worker_are_requeued_and_a_lost_payload_fails_saying_why(queue):
    job = queue.submit("key:a:alice", [("a.txt", b"a"), ("b.txt", b"b"), ("c.txt", b"c")])
    here = this_worker().rsplit(":", 1)[0]
    dead, lost, alive = queue.claim(f"{here}:999999999"), queue.claim(f"{here}:999999998"), queue.claim(this_worker())
    lost.payload.unlink()  # its spooled file vanished with the crash
    assert queue.recover() == 1
    statuses = {f.name: (f.status, f.error) for f in queue.get(job.id).files}
    assert statuses["a.txt"] == ("queued", None)  # claimed by a process of this host that is gone
    assert statuses["b.txt"][0] == "failed" and "upload it again" in statuses["b.txt"][1]
    assert statuses["c.txt"] == ("running", None)  # its process (this one) still runs it
    again = queue.claim("host:new")
    assert again.name == dead.name and again.payload.read_bytes() == b"a" and alive.name == "c.txt"


@pytest.mark.slow
def test_an_upload_answered_202_survives_kill_9(tmp_path):
    deployment = Deployment.create(tmp_path)
    key = deployment.key("admin")
    headers = {"Authorization": f"Bearer {key}"}
    served = deployment.serve(key)
    files = [("files", (p.name, p.read_bytes())) for p in sorted(CITY.iterdir())]
    accepted = httpx.post(served.url + "/api/documents", headers=headers, files=files, timeout=60)
    assert accepted.status_code == 202
    served.kill()
    served = deployment.serve(key)
    url = served.url
    try:
        deadline = time.monotonic() + 180
        while (job := httpx.get(f"{url}/api/jobs/{accepted.json()['id']}", headers=headers).json())["status"] not in (
                "done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        assert [f["status"] for f in job["files"]] == ["done"] * len(files)
        titles = {d["title"] for d in httpx.get(url + "/api/documents", headers=headers).json()["documents"]}
        assert len(titles) == len(files)
        assert httpx.post(url + "/api/audit/verify", headers=headers).json()["ok"]
    finally:
        served.stop()

"""A server told to stop (SIGTERM, as systemd or Docker stop it) stops within its grace period
even while a long ingest runs (#19: SIGTERM hung while the ingest queue drained): it takes no
further file, abandons the one in hand, and that file, like every other still queued, is taken
up again at the next start. Nothing is lost and nothing is recorded as failed."""

from __future__ import annotations

import random
import time

import httpx
import pytest

from sekisho.audit.log import AuditLog
from sekisho.db import SQLiteDatabase
from sekisho.ingest.jobs import JobQueue
from server_fixtures.process import Deployment

GRACE_S = 2.0


def long_notice(kb: int, seed: int = 7) -> bytes:
    """About `kb` KB of Japanese sentences: thousands of passages to embed, tens of seconds."""
    rng = random.Random(seed)
    words = ["住民票", "手数料", "窓口", "申請書", "市役所", "証明書", "受付時間", "郵送", "本人確認", "委任状"]
    lines, size = [], 0
    while size < kb * 1000:
        line = "、".join(rng.choice(words) for _ in range(8)) + "について説明します。"
        lines.append(line)
        size += len(line.encode()) + 1
    return "\n".join(lines).encode()


def _job(url: str, headers: dict, job_id: str) -> dict:
    return httpx.get(f"{url}/api/jobs/{job_id}", headers=headers).json()


@pytest.mark.slow
def test_sigterm_during_a_long_ingest_stops_within_the_grace_and_the_upload_resumes(tmp_path):
    deployment = Deployment.create(tmp_path, server_toml=f"shutdown_grace_s = {GRACE_S}\nmax_upload_mb = 5")
    key = deployment.key("admin")
    headers = {"Authorization": f"Bearer {key}"}
    served = deployment.serve(key)
    try:
        # Thousands of passages to embed: far longer than the grace on any machine.
        big = httpx.post(served.url + "/api/documents", headers=headers, timeout=60,
                         files=[("files", ("nagai.txt", long_notice(600)))]).json()
        small = httpx.post(served.url + "/api/documents", headers=headers, timeout=60,
                           files=[("files", ("mijikai.txt", "粗大ごみは予約制です。".encode()))]).json()
        deadline = time.monotonic() + 30
        while _job(served.url, headers, big["id"])["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        took = served.terminate(timeout=GRACE_S + 30)
    finally:
        served.stop()
    assert took < GRACE_S + 8, f"SIGTERM took {took:.1f} s with a grace of {GRACE_S} s"
    log = served.log.read_text(errors="replace")
    assert "Traceback" not in log and "queued again" in log, log
    # Both files wait in the queue: the abandoned one put back, the next one never taken.
    assert _files(tmp_path, big, small) == (["queued"], ["queued"])
    served = deployment.serve(key)
    try:
        deadline = time.monotonic() + 60
        while _job(served.url, headers, big["id"])["status"] == "queued":  # taken up again at the start
            assert time.monotonic() < deadline
            time.sleep(0.2)
        took = served.terminate(timeout=GRACE_S + 30)
    finally:
        served.stop()
    assert took < GRACE_S + 8
    assert _files(tmp_path, big, small) in ((["queued"], ["queued"]), (["done"], ["queued"]), (["done"], ["done"]))
    audit = AuditLog(tmp_path / "audit.db")
    try:
        ingests = [e.record for e in audit.query(kind="document.ingest", limit=100)]
        assert audit.verify().ok
    finally:
        audit.close()
    assert all(r["status"] == "done" for r in ingests)  # an abandoned file is never recorded as failed


def _files(folder, *jobs: dict) -> tuple[list[str], ...]:
    """The status of each job's files, read from the store as the next start will find them."""
    db = SQLiteDatabase(folder / "kb.db", foreign_keys=True)
    try:
        queue = JobQueue(db, folder / "kb.db.uploads")
        return tuple([f.status for f in queue.get(job["id"]).files] for job in jobs)
    finally:
        db.close()

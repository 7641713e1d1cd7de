"""Uploads are refused at the door for what ingestion would refuse anyway (#19): the padded Word
archive (6 MB expanding to 247 MB was accepted) is 413 before it is queued, and names Windows
reads differently (C:evil.txt was accepted, then failed in the queue) are 400 before anything is
stored."""

from __future__ import annotations

import pytest

from ingest_fixtures.archives import docx_with_body, padded_bomb, paragraph
from server_fixtures.support import make_settings, run_server, wait_for_job


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from run_server(make_settings(tmp_path_factory.mktemp("uploads"), max_upload_mb=8))


def _jobs_and_documents(server) -> tuple[int, int]:
    store = server.app.state.sekisho.runtime.kb().store
    with store.db.read() as conn:
        jobs = conn.execute("SELECT count(*) FROM ingest_jobs").fetchone()[0]
    return jobs, len(store.documents())


def test_a_padded_docx_bomb_is_413_before_it_is_queued(server, tmp_path):
    bomb = padded_bomb(tmp_path / "report.docx").read_bytes()
    before = _jobs_and_documents(server)
    with server.client("admin") as admin:
        response = admin.post("/api/documents", files=[("files", ("report.docx", bomb))])
    assert response.status_code == 413, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "too_large" and "document.xml" in error["message"]
    assert _jobs_and_documents(server) == before


def test_a_real_docx_still_passes(server):
    with server.client("admin") as admin:
        response = admin.post("/api/documents", files=[("files", ("ok.docx", docx_with_body(paragraph("本文です。"))))])
        assert response.status_code == 202
        assert wait_for_job(admin, response.json()["id"])["status"] == "done"


@pytest.mark.parametrize("name", ["C:evil.txt", "CON.txt", "nul.md", "report.txt:stream", "trailing.txt.",
                                  "what?.txt"])
def test_names_windows_reads_differently_are_400_at_the_door(server, name):
    before = _jobs_and_documents(server)
    with server.client("admin") as admin:
        response = admin.post("/api/documents", files=[("files", (name, "本文です。".encode()))])
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_filename", response.text
    assert _jobs_and_documents(server) == before

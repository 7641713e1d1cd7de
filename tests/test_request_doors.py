"""Every door asks through the one request path: the CLI, the native API, the web page, the
OpenAI-compatible gateway (plain, streamed, with retrieval), conversations, apps and the arena.
Each governed call's audit record must have left through RequestPath's one exit (`_record`),
which is watched here; a door that called a model or wrote its own record would show up as a
record the exit never saw. Every record, from every door, carries the call's energy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sekisho.arena import load_suite, run_suite
from sekisho.audit.log import AuditLog
from sekisho.cli import app as cli
from sekisho.config import RetrievalConfig, Settings
from sekisho.request import RequestPath
from server_fixtures.support import CITY, csrf_of, make_settings, run_server, wait_for_job

GOVERNED = ("chat", "ask", "choice")
FIXTURES = Path(__file__).parent / "arena_fixtures"


@pytest.fixture
def exits(monkeypatch) -> set[str]:
    """The request ids that left through the path's one exit, in this process (the test server
    runs on a thread of it)."""
    seen: set[str] = set()
    original = RequestPath._record

    def watched(self, turn, status, **kwargs):
        seen.add(turn.request_id)
        return original(self, turn, status, **kwargs)

    monkeypatch.setattr(RequestPath, "_record", watched)
    return seen


def assert_energy(energy: dict) -> None:
    """The shape every governed record and answer carries: joules measured here (a local backend)."""
    assert set(energy) == {"joules", "source", "label"} and energy["source"] in ("rapl", "estimate")
    assert isinstance(energy["joules"], float) and energy["joules"] >= 0.0 and energy["label"]


def governed_records(audit_db: Path) -> list[dict]:
    log = AuditLog(audit_db)
    try:
        return [e.record for kind in GOVERNED for e in log.query(kind=kind, limit=10_000)]
    finally:
        log.close()


def test_the_server_doors(tmp_path, exits):
    served = run_server(make_settings(tmp_path))
    server = next(served)
    try:
        with server.client("admin") as admin:
            job = admin.post("/api/documents", files=[("files", (p.name, p.read_bytes())) for p in
                                                      sorted(CITY.glob("juminhyo.md"))]).json()
            wait_for_job(admin, job["id"])
            question = "住民票の写しの交付手数料はいくらですか？"
            asked = admin.post("/api/ask", json={"question": question})
            assert asked.status_code == 200
            assert_energy(asked.json()["energy"])
            chat = {"messages": [{"role": "user", "content": question}]}
            for model in ("extractive", "sekisho-rag/extractive"):
                answered = admin.post("/v1/chat/completions", json={**chat, "model": model})
                assert answered.status_code == 200
                assert_energy(answered.json()["sekisho"]["energy"])
            for model in ("extractive", "sekisho-rag/extractive"):
                with admin.stream("POST", "/v1/chat/completions", json={**chat, "model": model, "stream": True}) as r:
                    events = r.read().decode()
                    assert r.status_code == 200 and events.rstrip().endswith("[DONE]")
                finish = [json.loads(line[6:]) for line in events.splitlines() if line.startswith("data: {")
                          and '"sekisho"' in line]
                assert_energy(finish[0]["sekisho"]["energy"])
            conversation = admin.post("/api/conversations", json={}).json()["id"]
            turn = admin.post(f"/api/conversations/{conversation}/messages", json={"content": question})
            assert turn.status_code == 200
            assert_energy(turn.json()["energy"])
            app = admin.post("/api/apps/proofread/run", json={"inputs": {"text": "申請する時は、手続きを確認して下さい。"}})
            assert app.status_code == 200
            assert_energy(app.json()["parts"][0]["energy"])
        with httpx.Client(base_url=server.url, follow_redirects=False) as browser:
            assert browser.post("/login", data={"key": server.keys["user"]}).status_code == 303
            page = browser.post("/ui/ask", data={"question": question},
                                headers={"X-CSRF-Token": csrf_of(browser.get("/chat").text)})
            assert page.status_code == 200 and "answer" in page.text
    finally:
        next(served, None)
    records = governed_records(tmp_path / "audit.db")
    assert len(records) == 8
    assert {r["request_id"] for r in records} <= exits
    for record in records:
        assert_energy(record["energy"])


def test_the_cli_and_the_arena(tmp_path, exits):
    config = tmp_path / "sekisho.toml"
    config.write_text('[store]\npath = "kb.db"\n[retrieval]\nembedder = "use-m3"\n'
                      '[audit]\npath = "audit.db"\nkey_path = "signing.key"\n', encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(config), "ingest", str(CITY)]).exit_code == 0
    asked = runner.invoke(cli, ["--config", str(config), "ask", "住民票の写しの交付手数料はいくらですか？", "--json"])
    assert asked.exit_code == 0, asked.output
    assert json.loads(asked.stdout)["audit_seq"] >= 1
    records = governed_records(tmp_path / "audit.db")
    assert len(records) == 1 and records[0]["request_id"] in exits
    assert_energy(records[0]["energy"])

    arena = tmp_path / "arena"
    arena.mkdir()
    run_suite(Settings(base_dir=str(arena), retrieval=RetrievalConfig(embedder="use-m3")), load_suite(FIXTURES / "suite.toml"),
              ["extractive"], arena / "run", limit=1, data=FIXTURES)
    arena_records = governed_records(arena / "run" / "audit.db")
    assert len(arena_records) >= 5 and {r["request_id"] for r in arena_records} <= exits
    assert all(re.fullmatch(r"[0-9a-f]{16}", r["request_id"]) for r in arena_records)
    for record in arena_records:
        assert_energy(record["energy"])

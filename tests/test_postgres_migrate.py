"""`sekisho migrate`: an SQLite deployment (the sample corpus, its audit chain with a held and
decided review, a key) copied into PostgreSQL; the chain verifies there with the same head, search
answers the same, the key and the review come along, and a second run copies nothing twice."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sekisho.answer import request_for_passages
from sekisho.audit import AuditLog, ReviewQueue
from sekisho.cli import app
from sekisho.config import load_settings
from sekisho.identity import Principal, Role
from sekisho.models import Passage
from sekisho.request import RequestPath
from sekisho.retrieval import open_knowledge_base

CITY = Path(__file__).resolve().parents[1] / "samples" / "city"


def _deployment(tmp_path: Path) -> Path:
    config = tmp_path / "sekisho.toml"
    config.write_text('[store]\npath = "kb.db"\n[retrieval]\nembedder = "use-m3"\n'
                      '[audit]\npath = "audit.db"\nkey_path = "signing.key"\ncheckpoint_every = 3\n', encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(app, ["--config", str(config), "ingest", str(CITY)]).exit_code == 0
    assert runner.invoke(app, ["--config", str(config), "keys", "create", "--role", "user"]).exit_code == 0
    path = RequestPath(load_settings(config))
    for i in range(4):
        request = request_for_passages(f"期限は{i}", [Passage(1, "n:0", "案内", "期限は14日以内です。")])
        held = path.complete(request, backend="extractive", principal=Principal("alice", Role.USER),
                             purpose="external")
    path.review.approve(held.review_id, Principal("rin", Role.REVIEWER))
    return config


def test_migrate_round_trips_the_sample_corpus_with_its_audit_chain(tmp_path, postgres_url):
    config = _deployment(tmp_path)
    source = load_settings(config)
    old_audit = AuditLog.from_settings(source)
    head = old_audit.head()
    old_audit.close()
    runner = CliRunner()
    first = runner.invoke(app, ["--config", str(config), "migrate", "--to", postgres_url])
    assert first.exit_code == 0, first.output
    assert "7 copied" in first.output and "chunks 38/38" in first.output and "keys 1" in first.output
    again = runner.invoke(app, ["--config", str(config), "migrate", "--to", postgres_url])
    assert again.exit_code == 0 and "0 copied, 7 unchanged" in again.output and "audit records +0" in again.output

    moved = source.model_copy(update={"store": source.store.model_copy(update={"url": postgres_url})})
    audit = AuditLog.from_settings(moved)
    assert audit.db.dialect == "postgresql" and audit.head() == head and audit.verify().ok
    reviews = ReviewQueue(audit)
    assert [(r.status, r.reviewer) for r in reviews.list(None)] == [("pending", None)] * 3 + [("approved", "rin")]
    # New records and reviews continue the chain and the numbering.
    with audit.transaction() as conn:
        assert reviews.hold_in(conn, "新しい保留", ["external_use"], "alice", head[0]) == 5
    assert audit.verify().ok and audit.head()[0] > head[0]
    audit.close()
    keys = runner.invoke(app, ["--config", str(config), "keys", "list"], env={"SEKISHO_STORE__URL": postgres_url})
    assert keys.exit_code == 0 and "user" in keys.output

    with open_knowledge_base(source) as before, open_knowledge_base(moved) as after:
        assert after.store.chunk_count() == before.store.chunk_count() == 38
        for question in ("住民票の写しの手数料は？", "粗大ごみの出し方", "保育園の申し込み期限"):
            # The same best passage; below it BM25 scores differ in the last digits (tantivy stores
            # document lengths coarsened to a byte), which may swap near-ties.
            got, want = ([h.chunk.id for h in kb.search(question, k=3)] for kb in (after, before))
            assert got[0] == want[0] and len(set(got) & set(want)) >= 2


def test_migrate_refuses_a_target_whose_chain_differs(tmp_path, postgres_url):
    config = _deployment(tmp_path)
    other = AuditLog(postgres_url)
    other.append("chat", {"principal": "someone else"})
    other.close()
    result = CliRunner().invoke(app, ["--config", str(config), "migrate", "--to", postgres_url])
    assert result.exit_code == 1 and "chains differ" in result.output and "Traceback" not in result.output

"""The governance commands: `audit verify` names the first tampered record in one line and exits 1;
review and provenance commands work on the configured files."""

from __future__ import annotations

import sqlite3

from typer.testing import CliRunner

from sekisho.answer import request_for_passages
from sekisho.cli import app
from sekisho.config import load_settings
from sekisho.identity import Principal, Role
from sekisho.models import Passage
from sekisho.request import RequestPath


def _config(tmp_path):
    path = tmp_path / "sekisho.toml"
    path.write_text('[audit]\npath = "audit.db"\nkey_path = "signing.key"\ncheckpoint_every = 3\n', encoding="utf-8")
    return path


def _held(config):
    request_path = RequestPath(load_settings(config))
    request = request_for_passages("期限は", [Passage(1, "n:0", "案内", "期限は14日以内です。")])
    return request_path.complete(request, backend="extractive", principal=Principal("alice", Role.USER), purpose="external")


def test_audit_verify_reports_the_first_bad_record(tmp_path):
    config = _config(tmp_path)
    held = _held(config)
    runner = CliRunner()
    ok = runner.invoke(app, ["--config", str(config), "audit", "verify"])
    assert ok.exit_code == 0 and "OK" in ok.output
    conn = sqlite3.connect(tmp_path / "audit.db")
    conn.execute("UPDATE audit_log SET body = replace(body, 'alice', 'mallory') WHERE seq = ?", (held.audit_seq,))
    conn.commit()
    conn.close()
    bad = runner.invoke(app, ["--config", str(config), "audit", "verify"])
    assert bad.exit_code == 1
    assert f"record {held.audit_seq}" in bad.output and "altered" in bad.output
    assert "Traceback" not in bad.output


def test_review_approve_then_provenance_export_and_verify(tmp_path):
    config = _config(tmp_path)
    held = _held(config)
    runner = CliRunner()
    listed = runner.invoke(app, ["--config", str(config), "review", "list"])
    assert listed.exit_code == 0 and "alice" in listed.output
    early = runner.invoke(app, ["--config", str(config), "provenance", "export", str(held.audit_seq), "-o",
                                str(tmp_path / "p.json")])
    assert early.exit_code == 1 and "not been approved" in early.output
    approved = runner.invoke(app, ["--config", str(config), "review", "approve", str(held.review_id)])
    assert approved.exit_code == 0 and "approved" in approved.output
    again = runner.invoke(app, ["--config", str(config), "review", "approve", str(held.review_id)])
    assert again.exit_code == 1 and "already approved" in again.output
    exported = runner.invoke(app, ["--config", str(config), "provenance", "export", str(held.audit_seq), "-o",
                                   str(tmp_path / "p.json")])
    assert exported.exit_code == 0
    assert runner.invoke(app, ["provenance", "verify", str(tmp_path / "p.json")]).exit_code == 0
    (tmp_path / "p.json").write_bytes((tmp_path / "p.json").read_bytes().replace(b"14", b"41"))
    failed = runner.invoke(app, ["provenance", "verify", str(tmp_path / "p.json")])
    assert failed.exit_code == 1 and "content" in failed.output


def test_policy_check_names_file_and_key(tmp_path):
    bad = tmp_path / "policy.toml"
    bad.write_text('[external]\nMY_NUMBER = "deny"\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["policy", "check", str(bad)])
    assert result.exit_code == 1 and f"{bad}: external.MY_NUMBER" in result.output.replace("\n", "")


def test_cli_ingest_records_what_it_changed(tmp_path):
    """The CLI's ingest wrote no audit record (#19): documents entered the knowledge base and left
    it with no trace, while the same upload through the server was recorded."""
    from sekisho.audit.log import AuditLog

    config = tmp_path / "sekisho.toml"
    config.write_text('[store]\npath = "kb.db"\n[retrieval]\nembedder = "use-m3"\n'
                      '[audit]\npath = "audit.db"\nkey_path = "signing.key"\n', encoding="utf-8")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("図書館は月曜日が休館日です。", encoding="utf-8")
    (folder / "b.md").write_text("# 手数料\n住民票は1通300円です。", encoding="utf-8")
    (folder / "c.pdf").write_bytes(b"%PDF-1.4 broken")
    runner = CliRunner()
    first = runner.invoke(app, ["--config", str(config), "ingest", str(folder), "--tag", "公開"])
    assert first.exit_code == 1  # the broken PDF
    (folder / "a.txt").write_text("図書館は火曜日が休館日です。", encoding="utf-8")
    (folder / "b.md").unlink()
    (folder / "c.pdf").unlink()
    assert runner.invoke(app, ["--config", str(config), "ingest", str(folder), "--prune", "--tag", "公開"]).exit_code == 0
    assert runner.invoke(app, ["--config", str(config), "ingest", str(folder), "--tag", "公開"]).exit_code == 0  # unchanged
    log = AuditLog(tmp_path / "audit.db")
    try:
        records = [(e.kind, e.record) for e in log.query(newest_first=False, limit=100)]
        assert log.verify().ok
    finally:
        log.close()
    summary = [(kind, r["path"].rsplit("/", 1)[-1], r.get("status", "")) for kind, r in records]
    assert summary == [("document.ingest", "a.txt", "added"), ("document.ingest", "b.md", "added"),
                       ("document.ingest", "c.pdf", "failed"), ("document.ingest", "a.txt", "updated"),
                       ("document.delete", "b.md", "")]
    assert all(r["principal"].startswith("cli:") for _, r in records)
    assert records[0][1]["tags"] == ["公開"] and "PDF" in records[2][1]["error"]

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

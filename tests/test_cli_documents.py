"""`sekisho documents list|delete`: what is in the knowledge base and where it lives, and a
deletion that is audited and leaves search without the document."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sekisho.audit.log import AuditLog
from sekisho.cli import app
from sekisho.config import load_settings
from server_fixtures.support import CITY


def test_list_and_delete_documents(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEKISHO_CONFIG", raising=False)
    runner = CliRunner()
    ingested = runner.invoke(app, ["ingest", str(CITY / "sodai-gomi.txt"), str(CITY / "toshokan.txt")])
    assert ingested.exit_code == 0, ingested.output
    assert f"新しい知識ベースを作ります (creating a new knowledge base): {tmp_path / 'sekisho.db'}" in ingested.output

    listed = json.loads(runner.invoke(app, ["documents", "list", "--json"]).output)
    assert sorted(d["path"] for d in listed) == [str(CITY / "sodai-gomi.txt"), str(CITY / "toshokan.txt")]
    assert {d["title"] for d in listed} == {"粗大ごみの出し方", "みなと市立中央図書館 利用案内"}
    table = runner.invoke(app, ["documents", "list"])
    assert str(tmp_path / "sekisho.db") in table.output and "粗大ごみの出し方" in table.output

    library = next(d for d in listed if d["path"].endswith("toshokan.txt"))
    # By id and by path; an unknown one is named, the others are still deleted, exit code 1.
    deleted = runner.invoke(app, ["documents", "delete", library["id"], "no-such-document"])
    assert deleted.exit_code == 1
    assert f"削除 (deleted): {library['id']}" in deleted.output
    assert "見つかりません (no such document): no-such-document" in deleted.output
    assert [d["id"] for d in json.loads(runner.invoke(app, ["documents", "list", "--json"]).output)] \
        == [d["id"] for d in listed if d is not library]
    hits = json.loads(runner.invoke(app, ["search", "図書館の貸出冊数", "--json"]).output)
    assert all(h["doc_id"] != library["id"] for h in hits)

    again = runner.invoke(app, ["documents", "delete", str(CITY / "sodai-gomi.txt")])
    assert again.exit_code == 0 and "削除 (deleted)" in again.output
    audit = AuditLog.from_settings(load_settings())
    deletions = [e.record for e in audit.query(kind="document.delete", newest_first=False)]
    audit.close()
    assert [(r["document_id"], r["principal"].startswith("cli:")) for r in deletions] == \
        [(library["id"], True), (next(d["id"] for d in listed if d is not library), True)]

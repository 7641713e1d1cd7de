"""Task apps through the API: the shipped apps with the extractive default (a cited extractive
summary, the proofreading rules, a one-line refusal for apps that must write), an app an admin
adds by dropping one file in a folder or uploading it, retrieval scopes, and the audit record of
every run naming the app and its version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sekisho.apps import AppError, Catalog, parse_app
from sekisho.audit.log import AuditLog
from server_fixtures.support import CITY, make_settings, run_server, upload_and_wait

ORG_APP = '''id = "notice-check"
version = "3"
title_ja = "通知の点検"
title_en = "Check a notice"
needs_generation = false
kind = "summary"
retrieval = "all"
prompt = "次の文書の要点: {document}\\n関連する資料: {passages}"
[[inputs]]
name = "text"
type = "textarea"
label_ja = "本文"
label_en = "Text"
required = true
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("apps")
    (folder / "apps").mkdir()
    served = run_server(make_settings(folder, extra_toml='[apps]\nfolder = "apps"\n'))
    live = next(served)
    with live.client("admin") as admin:
        upload_and_wait(admin)
    yield live
    next(served, None)


def audited(server, seq: int) -> dict:
    log = AuditLog(server.settings.base_dir + "/audit.db")
    try:
        return log.get(seq).record
    finally:
        log.close()


def test_the_shipped_apps_are_listed_with_their_forms(server):
    with server.client("user") as client:
        apps = {a["id"]: a for a in client.get("/api/apps").json()["apps"]}
    assert {"draft", "summarise", "proofread", "translate", "minutes", "faq"} <= set(apps)
    assert apps["summarise"]["title_ja"] == "要約" and not apps["summarise"]["needs_generation"]
    assert [i["type"] for i in apps["summarise"]["inputs"]] == ["textarea", "file", "choice"]
    assert apps["translate"]["needs_generation"]


def test_summarise_an_uploaded_pdf_without_a_model_quotes_and_cites_it(server):
    with server.client("user") as client:
        r = client.post("/api/apps/summarise/run", files={"file": ("jido-teate.pdf", (CITY / "jido-teate.pdf").read_bytes())},
                        data={"length": "短く"})
    assert r.status_code == 200, r.text
    (part,) = r.json()["parts"]
    assert part["status"] == "ok" and part["backend"] == "extractive"
    lines = part["text"].splitlines()
    assert len(lines) == 3 and all(line.startswith("- ") and line.endswith(("[1]", "[2]", "[3]")) for line in lines)
    assert any("偶数月" in line for line in lines)  # when it is paid: the notice's main point
    record = audited(server, part["audit_seq"])
    assert (record["app"], record["app_version"], record["purpose"]) == ("summarise", "1", "app")


def test_proofread_app_gives_the_rule_findings_governed_and_audited(server):
    with server.client("user") as client:
        r = client.post("/api/apps/proofread/run", json={"inputs": {"text": "申請する時は、手続きを確認して下さい。"}})
    (part,) = r.json()["parts"]
    assert part["backend"] == "sekisho-rules" and "「時」→「とき」" in part["text"]
    assert "申請するときは、手続を確認してください。" in part["text"]
    record = audited(server, part["audit_seq"])
    assert record["app"] == "proofread" and record["backend"]["kind"] == "tool"


def test_an_app_that_must_write_says_it_needs_a_generative_model(server):
    with server.client("user") as client:
        r = client.post("/api/apps/translate/run", json={"inputs": {"text": "こんにちは"}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "needs_generative_model"
    assert "生成するモデルが必要" in r.json()["error"]["message"]


def test_bad_inputs_are_one_line_each(server):
    with server.client("user") as client:
        unknown = client.post("/api/apps/summarise/run", json={"inputs": {"texts": "x"}})
        choice = client.post("/api/apps/summarise/run", json={"inputs": {"text": "本文です。", "length": "とても長く"}})
        empty = client.post("/api/apps/summarise/run", json={"inputs": {}})
        missing = client.post("/api/apps/nothing/run", json={"inputs": {}})
    assert unknown.status_code == 400 and "no input named 'texts'" in unknown.json()["error"]["message"]
    assert choice.status_code == 400 and "length: choose one of" in choice.json()["error"]["message"]
    assert empty.status_code == 400 and "give the text" in empty.json()["error"]["message"]
    assert missing.status_code == 404


def test_an_admin_adds_an_app_with_one_file_and_it_runs_with_its_retrieval_scope(server):
    with server.client("user") as user:
        assert user.post("/api/apps", content=ORG_APP).status_code == 403  # only admins add apps
    with server.client("admin") as admin:
        added = admin.post("/api/apps", content=ORG_APP)
        assert added.status_code == 201 and added.json()["id"] == "notice-check"
    assert "needs_generation = false" in (Path(server.settings.base_dir) / "apps" / "notice-check.toml").read_text()
    with server.client("user") as user:
        assert "notice-check" in {a["id"] for a in user.get("/api/apps").json()["apps"]}
        r = user.post("/api/apps/notice-check/run", json={"inputs": {"text": "住民票の写しの交付手数料について確認したい。"}})
    (part,) = r.json()["parts"]
    assert part["status"] == "ok" and part["sources"] and part["sources"][0]["title"]  # retrieval ran
    record = audited(server, part["audit_seq"])
    assert (record["app"], record["app_version"]) == ("notice-check", "3")


def test_a_file_dropped_in_the_folder_is_picked_up(tmp_path):
    catalog = Catalog(tmp_path)
    assert "dropped" not in catalog.apps()
    (tmp_path / "dropped.toml").write_text(ORG_APP.replace('"notice-check"', '"dropped"'), encoding="utf-8")
    assert catalog.get("dropped").title_ja == "通知の点検"
    (tmp_path / "broken.toml").write_text('id = "broken"\nversion = "1"\n', encoding="utf-8")
    catalog.apps()
    assert any("broken.toml: title_ja: required" in p for p in catalog.problems)


@pytest.mark.parametrize("change, message", [
    ({"id": "Bad Id"}, "id: lower-case letters"),
    ({"prompt": "{nothing}"}, "{nothing} names no input"),
    ({"retrieval": "some"}, 'retrieval: choose "none"'),
    ({"colour": "red"}, "colour: unknown key"),
])
def test_app_files_are_checked_key_by_key(change, message):
    import tomllib

    data = {**tomllib.loads(ORG_APP), **change}
    with pytest.raises(AppError, match=message):
        parse_app(data, "org/app.toml")


def test_a_streamed_run(server):
    with server.client("user") as client:
        events = []
        with client.stream("POST", "/api/apps/proofread/run",
                           json={"inputs": {"text": "および確認して下さい。"}, "stream": True}) as r:
            name = None
            for line in r.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name, json.loads(line[6:])))
    assert [n for n, _ in events][0] == "part" and events[-1][0] == "done"
    assert "".join(d["text"] for n, d in events if n == "delta") == events[-1][1]["parts"][0]["text"]

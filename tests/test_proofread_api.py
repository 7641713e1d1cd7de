"""POST /api/proofread on a real server: pasted text, uploaded files in legacy encodings and
DOCX, an ingested document by id; OpenAI-shaped refusals; one audit record per request that
never holds the text."""

from __future__ import annotations

import io

import docx
import pytest

from server_fixtures.support import CITY, live_server, make_settings, run_server, wait_for_job  # noqa: F401

TEXT = "申請する時は、住民および事業者の手続きを確認して下さい。"


def test_text_gives_findings_with_offsets_rules_and_sources(live_server):
    with live_server.client("user") as client:
        response = client.post("/api/proofread", json={"text": TEXT})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["chars"] == len(TEXT) and body["text"] is None
    spans = [(f["rule"], TEXT[f["start"]:f["end"]], f["suggestion"]) for f in body["findings"]]
    assert spans == [("formal-noun:時", "時", "とき"), ("conjunction:および", "および", "及び"),
                     ("okurigana:手続き", "手続き", "手続"), ("subsidiary:下さる", "下さい", "ください")]
    assert body["counts"] == {"formal-noun": 1, "conjunction": 1, "okurigana": 1, "subsidiary": 1}
    assert body["findings"][0]["source"] == "「公用文における漢字使用等について（平成22年内閣訓令第1号）」1(2)キ"
    assert body["findings"][0]["family_label"] == "形式名詞 / formal noun"


def test_empty_text_is_no_findings(live_server):
    with live_server.client("user") as client:
        assert client.post("/api/proofread", json={"text": ""}).json()["findings"] == []


@pytest.mark.parametrize("encoding", ["cp932", "euc_jp", "utf-8"])
def test_uploaded_text_file_in_any_supported_encoding(live_server, encoding):
    with live_server.client("user") as client:
        response = client.post("/api/proofread", files={"file": ("memo.txt", TEXT.encode(encoding), "text/plain")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == TEXT and body["name"] == "memo.txt"
    assert [f["rule"] for f in body["findings"]][:2] == ["formal-noun:時", "conjunction:および"]


def test_uploaded_docx(live_server):
    document = docx.Document()
    document.add_paragraph("書類を提出して下さい。")
    buffer = io.BytesIO()
    document.save(buffer)
    with live_server.client("user") as client:
        body = client.post("/api/proofread", files={"file": ("notice.docx", buffer.getvalue())}).json()
    (finding,) = body["findings"]
    assert finding["rule"] == "subsidiary:下さる" and body["text"][finding["start"]:finding["end"]] == "下さい"


def test_ingested_document_by_id(live_server):
    with live_server.client("admin") as admin:
        job = admin.post("/api/documents", files={"files": ("sodai-gomi.txt", (CITY / "sodai-gomi.txt").read_bytes())}).json()
        done = wait_for_job(admin, job["id"])
        assert done["status"] == "done", done
        document_id = done["files"][0]["document_id"]
        body = admin.post("/api/proofread", json={"document_id": document_id}).json()
        missing = admin.post("/api/proofread", json={"document_id": "no-such-document"})
    rules = [f["rule"] for f in body["findings"]]
    assert "okurigana:申し込み" in rules and "conjunction:また" in rules  # 申し込み方法, 電話またはインターネット
    assert all(body["text"][f["start"]:f["end"]] == f["text"] for f in body["findings"])
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "document_id"


@pytest.mark.parametrize(("kwargs", "status", "fragment"), [
    ({"json": {}}, 400, "exactly one of 'text' or 'document_id'"),
    ({"json": {"text": "a", "document_id": "b"}}, 400, "exactly one of"),
    ({"json": {"text": 5}}, 400, "text:"),
    ({"json": {"txt": "a"}}, 400, "txt:"),
    ({"content": b"not json", "headers": {"content-type": "application/json"}}, 400, "Invalid JSON"),
    ({"files": {"file": ("tool.exe", b"MZ\x90\x00")}}, 400, "unsupported file type .exe"),
    ({"files": {"file": ("../etc/passwd.txt", b"x")}}, 400, "path traversal"),
    ({"files": {"other": ("memo.txt", b"x")}}, 400, "form field 'file'"),
])
def test_bad_requests_are_one_openai_shaped_line(live_server, kwargs, status, fragment):
    with live_server.client("user") as client:
        response = client.post("/api/proofread", **kwargs)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and fragment in error["message"]
    assert error["type"] == "invalid_request_error"


def test_authentication_like_other_routes(live_server):
    with live_server.client() as anonymous:
        assert anonymous.post("/api/proofread", json={"text": TEXT}).status_code == 401
    with live_server.client("auditor") as auditor:
        assert auditor.post("/api/proofread", json={"text": TEXT}).status_code == 403


def test_each_request_is_audited_without_its_text(live_server):
    secret_text = "マイナンバー123456789018の申請書を提出する時は注意する。"
    with live_server.client("user") as client:
        client.post("/api/proofread", json={"text": secret_text})
    with live_server.client("auditor") as auditor:
        entries = auditor.get("/api/audit", params={"kind": "proofread", "limit": 1}).json()["entries"]
    record = entries[0]["record"]
    assert record["principal"].endswith(":test-user") and record["source"] == "text"
    assert record["chars"] == len(secret_text) and record["rules"] == {"formal-noun:時": 1} and record["total"] == 1
    assert "123456789018" not in str(entries[0]) and "申請書" not in str(entries[0])


def test_a_broken_organisation_dictionary_is_a_503_naming_it(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-dictionary")
    (folder / "org.toml").write_text('[rules]\ndisable = ["nothing"]\n', encoding="utf-8")
    for server in run_server(make_settings(folder, extra_toml='[proofread]\ndictionary = "org.toml"')):
        with server.client("user") as client:
            response = client.post("/api/proofread", json={"text": TEXT})
        assert response.status_code == 503
        assert "org.toml: [rules] disable: unknown rule family 'nothing'" in response.json()["error"]["message"]

"""The native /api over real HTTP (Uvicorn on loopback): upload, background ingest, polling,
search, passages, access tags, review queue, audit, keys, and every kind of refusal."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from sekisho.audit.log import AuditLog
from sekisho.audit.review import ReviewQueue
from server_fixtures.support import CITY, csrf_of, live_server, make_settings, run_server, wait_for_job  # noqa: F401


def hold(queue, output, reasons, requester, audit_seq):
    """A held output as the request path leaves it: queued in the transaction of its audit record."""
    with queue.audit.transaction() as conn:
        return queue.hold_in(conn, output, reasons, requester, audit_seq)


@pytest.fixture(scope="module")
def ingested(live_server):
    """Two city notices, one untagged and one tagged 人事, ingested through the API."""
    with live_server.client("admin") as admin:
        files = [("files", ("juminhyo.md", (CITY / "juminhyo.md").read_bytes(), "text/markdown"))]
        job = admin.post("/api/documents", files=files)
        assert job.status_code == 202, job.text
        first = wait_for_job(admin, job.json()["id"])
        tagged = admin.post("/api/documents", data={"tags": "人事"},
                            files=[("files", ("sodai-gomi.txt", (CITY / "sodai-gomi.txt").read_bytes(), "text/plain"))])
        second = wait_for_job(admin, tagged.json()["id"])
    return first, second


def test_upload_is_ingested_in_the_background_with_progress(ingested):
    first, second = ingested
    for job in (first, second):
        assert job["status"] == "done" and job["progress"] == 1.0 and job["done"] == job["total"] == 1
        assert job["files"][0]["chunks"] > 0 and job["files"][0]["document_id"]


def test_search_finds_the_uploaded_notice(live_server, ingested):
    with live_server.client("user") as user:
        r = user.post("/api/search", json={"query": "住民票の写しの交付手数料", "k": 3})
    assert r.status_code == 200
    hits = r.json()["hits"]
    assert hits and hits[0]["title"] and "300円" in " ".join(h["text"] for h in hits)


def test_access_tags_hide_documents_from_keys_without_the_tag(live_server, ingested):
    gomi_doc = ingested[1]["files"][0]["document_id"]
    hr_key = live_server.key("user", "hr", ("人事",))
    with live_server.client("user") as plain, live_server.client() as hr:
        hr.headers["Authorization"] = f"Bearer {hr_key}"
        plain_docs = {d["id"] for d in plain.get("/api/documents").json()["documents"]}
        hr_docs = {d["id"] for d in hr.get("/api/documents").json()["documents"]}
        assert gomi_doc in hr_docs and gomi_doc not in plain_docs
        query = {"query": "粗大ごみ ソファー 手数料", "k": 10}
        assert all(h["document_id"] != gomi_doc for h in plain.post("/api/search", json=query).json()["hits"])
        hr_hits = hr.post("/api/search", json=query).json()["hits"]
        assert any(h["document_id"] == gomi_doc for h in hr_hits)
        hidden_chunk = next(h["chunk_id"] for h in hr_hits if h["document_id"] == gomi_doc)
        assert hr.get(f"/api/passages/{hidden_chunk}").status_code == 200
        assert plain.get(f"/api/passages/{hidden_chunk}").status_code == 404


def test_passage_returns_the_cited_text(live_server, ingested):
    with live_server.client("user") as user:
        hit = user.post("/api/search", json={"query": "住民票", "k": 1}).json()["hits"][0]
        p = user.get(f"/api/passages/{hit['chunk_id']}").json()
    assert p["text"] == hit["text"] and p["text"] in p["document_text"]


@pytest.mark.parametrize("name", ["../etc/passwd.txt", "..\\..\\boot.ini.txt", "sub/dir.txt", "/abs.txt", ".hidden.txt"])
def test_path_traversal_names_are_refused(live_server, name):
    with live_server.client("admin") as admin:
        r = admin.post("/api/documents", files=[("files", (name, b"hello", "text/plain"))])
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_filename"


def _zip_without_word() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "x")
    return buf.getvalue()


@pytest.mark.parametrize("name,data,code", [
    ("tool.exe", b"MZ\x90\x00", "unsupported_type"),
    ("notes.txt", b"\x7fELF\x02\x01\x01" + b"\x00" * 64, "type_mismatch"),
    ("report.pdf", "これはPDFではありません".encode(), "type_mismatch"),
    ("letter.docx", _zip_without_word(), "type_mismatch"),
    ("page.html", b"just words, no markup at all", "type_mismatch"),
])
def test_wrong_types_are_refused_by_extension_and_content(live_server, name, data, code):
    with live_server.client("admin") as admin:
        r = admin.post("/api/documents", files=[("files", (name, data, "application/octet-stream"))])
    assert r.status_code == 415 and r.json()["error"]["code"] == code
    assert name in r.json()["error"]["message"]


def test_oversize_upload_is_413(live_server):
    big = b"a" * (live_server.settings.server.max_upload_mb * 1024 * 1024 + 200_000)
    with live_server.client("admin") as admin:
        r = admin.post("/api/documents", files=[("files", ("big.txt", big, "text/plain"))])
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"


def test_a_bad_file_refuses_the_whole_batch(live_server):
    with live_server.client("admin") as admin:
        before = len(admin.get("/api/documents").json()["documents"])
        r = admin.post("/api/documents", files=[
            ("files", ("good.txt", "良い文書です。".encode(), "text/plain")),
            ("files", ("bad.pdf", b"not a pdf", "application/pdf")),
        ])
        assert r.status_code == 415 and "bad.pdf" in r.json()["error"]["message"]
        assert len(admin.get("/api/documents").json()["documents"]) == before


def test_bad_keys_are_401_counted_per_address_then_429_and_audited_as_one_record(tmp_path):
    # A flood of bad keys: each is refused (401) until the address's budget is spent (429); the
    # audit log gets one record per address and reason with the count, not one per request.
    settings = make_settings(tmp_path, unauthenticated=6)
    served = run_server(settings)
    server = next(served)
    with server.client() as anon:
        statuses = [anon.get("/api/documents").status_code for _ in range(2)]
        bad = {"Authorization": "Bearer sk-skh-deadbeef_nope"}
        r = anon.get("/api/documents", headers=bad)
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert r.headers["www-authenticate"] == "Bearer"
        statuses += [anon.post("/api/search", headers=bad, json={"query": "x"}).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 401, 401, 429, 429]
    with server.client("admin") as admin:  # a valid key is not held back by the address's budget
        assert admin.get("/api/documents").status_code == 200
    next(served, None)  # stop the server: what was counted is written as it shuts down
    log = AuditLog(tmp_path / "audit.db")
    denials = [e.record for e in log.query(kind="access.denied")]
    by_reason = {d["reason"].split(":")[0]: d for d in denials if d["status"] == 401}
    assert len(denials) == 2 and set(by_reason) == {"missing API key", "invalid or revoked API key (APIキーが無効です)"}
    assert by_reason["missing API key"]["count"] == 2
    bad_keys = by_reason["invalid or revoked API key (APIキーが無効です)"]
    assert bad_keys["count"] == 4 and bad_keys["paths"] == ["GET /api/documents", "POST /api/search"]
    assert log.verify().ok


@pytest.mark.parametrize("role,method,path", [
    ("user", "post", "/api/documents"),
    ("user", "get", "/api/audit"),
    ("user", "get", "/api/reviews"),
    ("reviewer", "post", "/api/search"),
    ("auditor", "post", "/api/ask"),
    ("auditor", "get", "/api/documents"),
    ("reviewer", "get", "/api/keys"),
])
def test_roles_get_least_privilege(live_server, role, method, path):
    with live_server.client(role) as c:
        r = getattr(c, method)(path, **({"json": {"query": "x", "question": "x"}} if method == "post" else {}))
    assert r.status_code == 403, r.text
    assert f"role '{role}'" in r.json()["error"]["message"]
    with live_server.client("auditor") as auditor:
        latest = auditor.get("/api/audit", params={"kind": "access.denied", "limit": 1}).json()["entries"][0]
    assert latest["record"]["status"] == 403 and latest["record"]["path"] == path
    assert latest["record"]["principal"].endswith(f"test-{role}")


def test_review_queue_lists_and_decides(live_server):
    # A held output, put in the queue the way the request path does (same database, another handle).
    audit = AuditLog.from_settings(live_server.settings)
    queue = ReviewQueue(audit)
    seq = audit.append("request", {"principal": "key:x:someone"}).seq
    rid_a = hold(queue, "回答A [1]", ["unsupported_claims"], "key:x:someone", seq)
    rid_b = hold(queue, "回答B", ["purpose:external"], "key:x:someone", seq)
    rid_c = hold(queue, "回答C", ["copyright"], "key:x:someone", seq)
    audit.close()
    with live_server.client("reviewer") as reviewer:
        pending = {i["id"] for i in reviewer.get("/api/reviews").json()["items"]}
        assert {rid_a, rid_b, rid_c} <= pending
        approved = reviewer.post(f"/api/reviews/{rid_a}/approve", json={})
        assert approved.status_code == 200 and approved.json()["status"] == "approved"
        assert approved.json()["final_text"] == "回答A [1]"
        edited = reviewer.post(f"/api/reviews/{rid_b}/edit", json={"text": "修正した回答", "note": "表現を修正"})
        assert edited.json()["status"] == "edited" and edited.json()["final_text"] == "修正した回答"
        assert reviewer.post(f"/api/reviews/{rid_c}/reject", json={}).status_code == 400  # a reason is required
        rejected = reviewer.post(f"/api/reviews/{rid_c}/reject", json={"reason": "出典と矛盾"})
        assert rejected.json()["status"] == "rejected"
        again = reviewer.post(f"/api/reviews/{rid_a}/approve", json={})
        assert again.status_code == 409 and "already" in again.json()["error"]["message"]
        assert reviewer.post("/api/reviews/999999/approve", json={}).status_code == 404
        assert {rid_a, rid_b, rid_c}.isdisjoint({i["id"] for i in reviewer.get("/api/reviews").json()["items"]})
    with live_server.client("auditor") as auditor:
        decisions = auditor.get("/api/audit", params={"kind": "review.decision"}).json()["entries"]
    assert {d["record"]["review_id"] for d in decisions} >= {rid_a, rid_b, rid_c}


def test_audit_verify_and_export(live_server):
    with live_server.client("auditor") as auditor:
        verified = auditor.post("/api/audit/verify").json()
        assert verified["ok"] is True and verified["checked"] >= 1
        export = auditor.get("/api/audit/export")
    assert export.status_code == 200 and export.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in export.text.splitlines()]
    seqs = [line["seq"] for line in lines if "seq" in line]
    assert seqs == sorted(seqs) and len(seqs) >= verified["checked"] - 1


def test_keys_api_creates_once_and_revokes(live_server):
    with live_server.client("admin") as admin:
        created = admin.post("/api/keys", json={"role": "user", "name": "kiosk", "tags": ["広報"]})
        assert created.status_code == 201
        secret, key_id = created.json()["secret"], created.json()["id"]
        listed = admin.get("/api/keys").json()["keys"]
        assert key_id in {k["id"] for k in listed} and secret not in json.dumps(listed)
        with live_server.client() as kiosk:
            kiosk.headers["Authorization"] = f"Bearer {secret}"
            assert kiosk.get("/api/me").json()["tags"] == ["広報"]
            used = next(k for k in admin.get("/api/keys").json()["keys"] if k["id"] == key_id)
            assert used["last_used_at"] is not None
            assert admin.delete(f"/api/keys/{key_id}").status_code == 200
            assert kiosk.get("/api/me").status_code == 401


def test_malformed_json_is_400_in_openai_shape(live_server):
    with live_server.client("user") as user:
        r = user.post("/api/search", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and set(r.json()["error"]) == {"message", "type", "param", "code"}
        r = user.post("/api/search", json={"query": "", "k": 0})
        assert r.status_code == 400 and r.json()["error"]["param"] in ("query", "k")


def test_rate_limit_is_per_key_429_with_retry_after(tmp_path):
    for server in run_server(make_settings(tmp_path, rate_limit=3)):
        with server.client("user") as user, server.client("admin") as admin:
            codes = [user.get("/api/me").status_code for _ in range(4)]
            assert codes == [200, 200, 200, 429]
            r = user.get("/api/me")
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["type"] == "rate_limit_error"
            assert admin.get("/api/me").status_code == 200  # another key has its own bucket


def test_pages_carry_a_strict_content_security_policy(live_server):
    with live_server.client() as anon:
        r = anon.get("/login")
    assert r.status_code == 200 and "script-src 'self';" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert 'src="/static/htmx.min.js"' in r.text  # vendored, never a CDN
    assert "https://" not in r.text


def test_web_pages_follow_the_session_and_the_role(live_server):
    with live_server.client(follow_redirects=False) as browser:
        assert browser.get("/chat").headers["location"] == "/login"
        r = browser.post("/login", data={"key": live_server.keys["user"]})
        assert r.status_code == 303 and "httponly" in r.headers["set-cookie"].lower()
        models = browser.get("/models")
        assert models.status_code == 200 and "extractive" in models.text and "組織内" in models.text
        assert browser.get("/documents").status_code == 200
        forbidden = browser.get("/audit")
        assert forbidden.status_code == 403 and "権限がありません" in forbidden.text
        assert browser.post("/logout").status_code == 403  # without the page's CSRF token
        assert browser.get("/chat").status_code == 200
        assert browser.post("/logout", data={"csrf_token": csrf_of(models.text)}).status_code == 303
        assert browser.get("/chat").status_code == 303


def test_openapi_describes_the_api_and_its_bearer_key(live_server):
    with live_server.client() as anon:
        spec = anon.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert {"/v1/chat/completions", "/v1/models", "/v1/embeddings", "/api/documents", "/api/ask",
            "/api/reviews/{review_id}/approve", "/api/audit/verify", "/api/provenance/{seq}"} <= set(spec["paths"])
    assert not [p for p in spec["paths"] if not p.startswith(("/v1/", "/api/"))]  # UI pages stay out
    upload = spec["paths"]["/api/documents"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]


def test_numbers_beyond_what_sqlite_holds_are_400_not_500(live_server):
    """Found by the schema test once the merge brought quotas and feedback: a key limit or an
    audit record number past SQLite's integers crashed the request."""
    with live_server.client("admin") as admin:
        key = admin.post("/api/keys", json={"role": "user", "limits": {"tokens_per_day": 10**20}})
        feedback = admin.post("/api/feedback", json={"audit_seq": 2**63, "rating": 1})
    assert key.status_code == 400 and feedback.status_code == 400


def test_the_spec_describes_refusals_as_they_are_sent(live_server):
    """Refusals are 400 and JSON on every route (#19: the spec promised a 422 nobody receives, and
    text/plain for the audit export's 401), and a 405 names every method of its path."""
    with live_server.client() as anon:
        spec = anon.get("/openapi.json").json()
        export_401 = anon.get("/api/audit/export")
        options = anon.options("/api/documents")
    operations = [(path, method, op) for path, ops in spec["paths"].items() for method, op in ops.items()]
    assert not [(p, m) for p, m, op in operations if "422" in op["responses"]]
    assert not [(p, m) for p, m, op in operations if "400" not in op["responses"]]
    assert {media for _, _, op in operations for status, response in op["responses"].items() if int(status) >= 400
            for media in response["content"]} == {"application/json"}
    assert export_401.status_code == 401 and export_401.headers["content-type"] == "application/json"
    assert options.status_code == 405 and options.headers["allow"] == "GET, POST"


def test_documents_uploaded_and_deleted_while_serving_show_up_in_search(live_server, ingested):
    query = {"query": "図書館の貸出冊数", "k": 5}
    with live_server.client("admin") as admin:
        assert all("図書館" not in h["title"] for h in admin.post("/api/search", json=query).json()["hits"])
        job = admin.post("/api/documents", files=[("files", ("toshokan.txt", (CITY / "toshokan.txt").read_bytes(),
                                                              "text/plain"))]).json()
        doc_id = wait_for_job(admin, job["id"])["files"][0]["document_id"]
        assert any(h["document_id"] == doc_id for h in admin.post("/api/search", json=query).json()["hits"])
        assert admin.delete(f"/api/documents/{doc_id}").json() == {"id": doc_id, "deleted": True}
        assert all(h["document_id"] != doc_id for h in admin.post("/api/search", json=query).json()["hits"])
        assert admin.delete(f"/api/documents/{doc_id}").status_code == 404
    with live_server.client("auditor") as auditor:
        kinds = [e["kind"] for e in auditor.get("/api/audit", params={"limit": 20}).json()["entries"]]
    assert "document.delete" in kinds and "document.ingest" in kinds

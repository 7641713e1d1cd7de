"""Access tags hold wherever content is shown (#19). A document tagged 人事 and everything made
from it (the prompt that carried its passage, the answer, a held output, a reviewer's edit and
note, the provenance bundle) is read only by keys that may see the document. Roles say what a key
may do; tags say what it may read.

The walk at the bottom calls EVERY route the app serves with tagless keys of every role that has
no access to everything, aimed at the tagged document, its passages, its held reviews and its
audit records, and looks for the document's marker in the responses. A route added later without
a request described here fails the walk, so nobody can add a door around the tags by accident."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from sekisho.audit.log import verify_export
from sekisho.ingest import document_id
from server_fixtures.support import make_settings, run_server

MARKER = "KQX7731"  # ASCII: found however a response escapes its text
SECRET = f"人事評価メモ\n佐藤課長の特別手当の管理番号は{MARKER}です。査定は来月確定します。\n"
PUBLIC = "図書館のご案内\n市立図書館は毎週月曜日が休館日です。開館時間は午前9時から午後7時までです。\n"
QUESTION = "佐藤課長の特別手当の管理番号は何ですか？"
ROLES = ("user", "reviewer", "auditor")  # admins see every document by design


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A server whose log holds 人事 content everywhere: an answer, two held answers (one edited
    by a reviewer holding the tag, with a note), a provenance export."""
    for server in run_server(make_settings(tmp_path_factory.mktemp("access"))):
        with server.client("admin") as admin:
            job = admin.post("/api/documents", data={"tags": "人事"},
                             files=[("files", ("hyoka.txt", SECRET.encode()))]).json()
            admin.post("/api/documents", files=[("files", ("toshokan.txt", PUBLIC.encode()))])
            _wait(admin, job["id"])
        tagged = {role: server.key(role, f"jinji-{role}", ("人事",)) for role in ROLES}
        tagless = {role: server.key(role, f"plain-{role}") for role in ROLES}
        with _client(server, tagged["user"]) as user:
            answer = user.post("/api/ask", json={"question": QUESTION}).json()
            assert answer["status"] == "ok" and MARKER in answer["answer"], answer
            conversation = user.post("/api/conversations", json={"title": "人事"}).json()["id"]
            turn = user.post(f"/api/conversations/{conversation}/messages", json={"content": QUESTION}).json()
            assert MARKER in turn["answer"], turn
            held = [user.post("/v1/chat/completions", json={
                "model": "sekisho-rag/extractive", "messages": [{"role": "user", "content": QUESTION}],
                "sekisho": {"purpose": "external"}}).json()["sekisho"]["review_id"] for _ in range(2)]
        with _client(server, tagged["reviewer"]) as reviewer:
            edited = reviewer.post(f"/api/reviews/{held[1]}/edit",
                                   json={"text": f"管理番号は{MARKER}（確認済み）", "note": f"{MARKER} を照合"})
            assert edited.status_code == 200, edited.text
        with _client(server, tagged["auditor"]) as auditor:
            entries = auditor.get("/api/audit", params={"limit": 1000}).json()["entries"]
        seqs = sorted({e["seq"] for e in entries if e["kind"] in ("ask", "review.decision", "review.hold")})
        yield {"server": server, "tagged": tagged, "tagless": tagless, "pending": held[0], "edited": held[1],
               "ask_seq": answer["audit_seq"], "seqs": seqs, "job": job["id"], "conversation": conversation}


def _client(server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _wait(client: httpx.Client, job_id: str) -> None:
    from server_fixtures.support import wait_for_job

    assert wait_for_job(client, job_id)["status"] == "done"


def test_a_reviewer_without_the_tag_neither_lists_reads_nor_decides_a_held_answer(world):
    server, pending = world["server"], world["pending"]
    with _client(server, world["tagless"]["reviewer"]) as reviewer:
        assert pending not in {i["id"] for i in reviewer.get("/api/reviews").json()["items"]}
        assert reviewer.get(f"/api/reviews/{pending}").status_code == 404
        assert reviewer.post(f"/api/reviews/{pending}/approve", json={}).status_code == 404
        assert MARKER not in reviewer.get("/reviews").text
    with _client(server, world["tagged"]["reviewer"]) as reviewer:
        item = reviewer.get(f"/api/reviews/{pending}").json()
        assert item["status"] == "pending" and MARKER in item["output"]


def test_auditors_see_metadata_and_hashes_without_the_tag_and_content_with_it(world):
    server, seq = world["server"], world["ask_seq"]
    with _client(server, world["tagless"]["auditor"]) as auditor:
        [entry] = [e for e in auditor.get("/api/audit", params={"kind": "ask"}).json()["entries"] if e["seq"] == seq]
        export = auditor.get("/api/audit/export").text
    assert set(entry["withheld"]) == {"prompt", "output"}
    assert entry["record"]["output"]["sha256"] and entry["record"]["sources"][0]["tags"] == ["人事"]
    assert entry["record"]["principal"].endswith("jinji-user") and MARKER not in json.dumps(entry)
    assert MARKER not in export
    checked = verify_export(export.splitlines(), public_key=None)
    assert checked.ok and checked.withheld >= 4, checked  # the ask, two holds' requests, the decision
    with _client(server, world["tagged"]["auditor"]) as auditor:
        [entry] = [e for e in auditor.get("/api/audit", params={"kind": "ask"}).json()["entries"] if e["seq"] == seq]
        export = auditor.get("/api/audit/export").text
    assert entry["withheld"] == [] and MARKER in entry["record"]["output"]
    whole = verify_export(export.splitlines(), public_key=None)
    assert whole.ok and whole.withheld == 0 and MARKER in export


def test_passages_need_the_search_permission_and_the_tag(world):
    server = world["server"]
    chunk = f"{document_id('upload/hyoka.txt')}:0"
    with _client(server, world["tagged"]["reviewer"]) as reviewer:
        assert reviewer.get(f"/api/passages/{chunk}").status_code == 403  # reviewers do not browse the corpus
    with _client(server, world["tagless"]["user"]) as user:
        assert user.get(f"/api/passages/{chunk}").status_code == 404
    with _client(server, world["tagged"]["user"]) as user:
        assert MARKER in user.get(f"/api/passages/{chunk}").json()["text"]


def test_an_auditor_may_ask_who_it_is(world):
    with _client(world["server"], world["tagless"]["auditor"]) as auditor:
        me = auditor.get("/api/me")
    assert me.status_code == 200 and me.json()["role"] == "auditor" and me.json()["permissions"] == ["audit"]


# --- the walk ------------------------------------------------------------------------------------

NOT_CONTENT = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}  # the API's description


def _requests(world) -> dict[tuple[str, str], list[dict]]:
    """Every route's requests aimed at the 人事 content: (method, path) -> [httpx request options].
    No request carries the marker itself (a route echoing its input would find it)."""
    doc = document_id("upload/hyoka.txt")
    reviews = [world["pending"], world["edited"]]
    ask = {"json": {"question": QUESTION}}
    chat = [{"role": "user", "content": QUESTION}]
    form = {"data": {"question": QUESTION, "text": "修正", "note": "n", "reason": "r"}}
    talk = {"path": {"conversation_id": world["conversation"]}}
    return {
        ("POST", "/v1/chat/completions"): [{"json": {"model": m, "messages": chat, "stream": s}}
                                           for m in ("extractive", "sekisho-rag/extractive") for s in (False, True)],
        ("GET", "/v1/models"): [{}],
        ("POST", "/v1/embeddings"): [{"json": {"model": "default", "input": QUESTION}}],
        ("GET", "/api/me"): [{}],
        ("POST", "/api/documents"): [{"files": [("files", ("x.txt", "x".encode()))]}],
        ("GET", "/api/jobs/{job_id}"): [{"path": {"job_id": world["job"]}}],
        ("GET", "/api/documents"): [{}],
        ("DELETE", "/api/documents/{doc_id}"): [{"path": {"doc_id": "0" * 24}}],  # never the real one
        ("POST", "/api/search"): [{"json": {"query": QUESTION}}, {"json": {"query": "特別手当 管理番号", "mode": "lexical"}}],
        ("POST", "/api/ask"): [ask],
        ("GET", "/api/passages/{chunk_id}"): [{"path": {"chunk_id": f"{doc}:0"}}],
        ("GET", "/api/reviews"): [{"params": {"status": "all"}}],
        ("GET", "/api/reviews/{review_id}"): [{"path": {"review_id": r}} for r in reviews],
        ("POST", "/api/reviews/{review_id}/approve"): [{"path": {"review_id": world["pending"]}, "json": {}}],
        ("POST", "/api/reviews/{review_id}/edit"): [{"path": {"review_id": world["pending"]},
                                                     "json": {"text": "x", "note": "n"}}],
        ("POST", "/api/reviews/{review_id}/reject"): [{"path": {"review_id": world["pending"]},
                                                       "json": {"reason": "r"}}],
        ("POST", "/api/reviews/{review_id}/release"): [{"path": {"review_id": r}} for r in reviews],
        ("GET", "/api/audit"): [{"params": {"limit": 1000}}],
        ("POST", "/api/audit/verify"): [{}],
        ("GET", "/api/audit/export"): [{}],
        ("GET", "/api/provenance/{seq}"): [{"path": {"seq": s}} for s in world["seqs"]],
        ("GET", "/api/keys"): [{}],
        ("POST", "/api/keys"): [{"json": {"role": "user", "name": "walk"}}],
        ("DELETE", "/api/keys/{key_id}"): [{"path": {"key_id": "nosuchkey"}}],
        ("GET", "/"): [{}],
        ("GET", "/login"): [{}],
        ("POST", "/login"): [{"data": {"key": "sk-skh-wrong"}}],
        ("POST", "/logout"): [{}],
        ("GET", "/chat"): [{}],
        ("POST", "/ui/ask"): [form],
        ("POST", "/ui/reviews/{review_id}/release"): [{"path": {"review_id": r}} for r in reviews],
        ("GET", "/ui/passages/{chunk_id}"): [{"path": {"chunk_id": f"{doc}:0"}}],
        ("GET", "/documents"): [{}],
        ("GET", "/ui/documents/table"): [{}],
        ("POST", "/ui/documents"): [{"files": [("files", ("x.txt", "x".encode()))]}],
        ("GET", "/ui/jobs/{job_id}"): [{"path": {"job_id": world["job"]}}],
        ("POST", "/ui/documents/{doc_id}/delete"): [{"path": {"doc_id": "0" * 24}}],
        ("GET", "/reviews"): [{}],
        ("POST", "/ui/reviews/{review_id}/{action}"): [{"path": {"review_id": world["pending"], "action": a}, **form}
                                                       for a in ("approve", "edit", "reject")],
        ("GET", "/audit"): [{}],
        ("POST", "/ui/audit/verify"): [{}],
        ("GET", "/models"): [{}],
        ("POST", "/api/proofread"): [{"json": {"text": "検討を行う。"}}, {"json": {"document_id": doc}}],
        ("GET", "/api/conversations"): [{}],
        ("POST", "/api/conversations"): [{"json": {"title": "walk"}}],
        ("GET", "/api/conversations/{conversation_id}"): [talk],
        ("PATCH", "/api/conversations/{conversation_id}"): [{**talk, "json": {"title": "renamed"}}],
        ("DELETE", "/api/conversations/{conversation_id}"): [talk],
        ("GET", "/api/conversations/{conversation_id}/export"): [{**talk, "params": {"format": f}}
                                                                 for f in ("markdown", "json")],
        ("POST", "/api/conversations/{conversation_id}/messages"): [{**talk, "json": {"content": QUESTION}}],
        ("POST", "/api/conversations/{conversation_id}/regenerate"): [{**talk, "json": {}}],
        ("GET", "/ui/conversations/{conversation_id}/turns/{n}"): [{"path": {**talk["path"], "n": 1}}],
        ("POST", "/api/feedback"): [{"json": {"audit_seq": s, "rating": -1}} for s in world["seqs"]],
        ("GET", "/api/apps"): [{}],
        ("GET", "/api/apps/{app_id}"): [{"path": {"app_id": "summarise"}}],
        ("POST", "/api/apps"): [{"files": [("file", ("walk.toml", b'id = "walk"'))]}],
        ("POST", "/api/apps/{app_id}/run"): [{"path": {"app_id": "summarise"}, "json": {"inputs": {"text": QUESTION}}}],
        ("GET", "/apps"): [{}],
        ("GET", "/apps/{app_id}"): [{"path": {"app_id": "summarise"}}],
        ("POST", "/ui/apps"): [{"files": [("file", ("walk.toml", b'id = "walk"'))]}],
        ("GET", "/api/me/usage"): [{}],
        ("GET", "/api/usage"): [{}],
        ("GET", "/api/usage/quotas"): [{}],
        ("GET", "/usage"): [{}],
        ("GET", "/quota"): [{}],
        ("GET", "/ui/quota"): [{}],
        ("GET", "/keys"): [{}],
        ("GET", "/ui/keys/table"): [{}],
        ("POST", "/ui/keys"): [{"data": {"role": "user", "name": "walk"}}],
        ("POST", "/ui/keys/{key_id}/revoke"): [{"path": {"key_id": "nosuchkey"}}],
        ("GET", "/healthz"): [{}],
        ("GET", "/readyz"): [{}],
        ("GET", "/metrics"): [{}],
        ("GET", "/auth/oidc/start"): [{}],
        ("GET", "/auth/oidc/callback"): [{"params": {"state": "x", "code": "y"}}],
        ("GET", "/proofread"): [{}],
        ("POST", "/ui/proofread"): [{"data": {"text": "検討を行う。"}}],
    }


def _routes(app) -> list[tuple[str, str]]:
    routes = []
    for context in iter_route_contexts(app.routes):
        if context.path_format in NOT_CONTENT or not context.methods:
            continue  # the API's own description; static files (a Mount has no methods)
        routes += [(method, context.path_format) for method in sorted(context.methods - {"HEAD"})]
    return routes


def _send(client: httpx.Client, method: str, path: str, options: dict) -> httpx.Response:
    options = dict(options)
    url = path.format(**options.pop("path", {}))
    return client.request(method, url, **options)


def test_no_route_shows_tagged_content_to_a_key_without_the_tag(world):
    server = world["server"]
    requests = _requests(world)
    routes = _routes(server.app)
    missing = sorted(set(routes) - set(requests))
    assert not missing, f"routes with no request described in _requests (add them): {missing}"
    shown = []
    for role in ROLES:
        with _client(server, world["tagless"][role]) as client:
            for method, path in routes:
                for options in requests[(method, path)]:
                    response = _send(client, method, path, options)
                    assert response.status_code < 500, f"{role} {method} {path}: {response.status_code}"
                    if MARKER in response.text:
                        shown.append(f"{role} {method} {path} ({response.status_code})")
    assert not shown, "tagged content shown to keys without the tag:\n" + "\n".join(shown)
    # The same walk with keys holding the tag does find it, so the search above could have.
    found = set()
    for role in ROLES:
        with _client(server, world["tagged"][role]) as client:
            for method, path in routes:
                if method != "GET":
                    continue  # reading is enough, and leaves the held answers as they are
                for options in requests[(method, path)]:
                    if MARKER in _send(client, method, path, options).text:
                        found.add(path)
    assert {"/api/passages/{chunk_id}", "/api/reviews/{review_id}", "/api/audit", "/api/audit/export",
            "/api/provenance/{seq}", "/reviews", "/api/conversations/{conversation_id}"} <= found, found


def test_only_keys_that_search_may_proofread_a_stored_document(world):
    """/api/proofread returns the document's text: a reviewer reading any untagged document
    through it was /api/passages's hole again."""
    server = world["server"]
    public = document_id("upload/toshokan.txt")
    with _client(server, world["tagged"]["reviewer"]) as reviewer:
        assert reviewer.post("/api/proofread", json={"document_id": public}).status_code == 403
    with _client(server, world["tagless"]["user"]) as user:
        assert user.post("/api/proofread", json={"document_id": public}).json()["text"].startswith("図書館")

"""Conversations over the knowledge base: kept per principal in the store, follow-ups answered in
context, every turn audited with its conversation id, export, feedback; and the rule that makes a
follow-up standalone."""

from __future__ import annotations

import json

import httpx
import pytest

from sekisho.audit.log import AuditLog
from sekisho.conversations import standalone_question
from sekisho.conversations.rewrite import condense_request, condensed
from server_fixtures.support import CITY, make_settings, run_server, upload_and_wait

FEE = "住民票の写しの交付手数料はいくらですか？"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conversations")
    served = run_server(make_settings(folder))
    live = next(served)
    with live.client("admin") as admin:
        upload_and_wait(admin)
    yield live
    next(served, None)


def test_a_follow_up_is_read_with_the_question_before_it():
    assert standalone_question("コンビニだと？", [FEE]) == f"{FEE}（コンビニだと？）"
    assert standalone_question("その場合、代理人でも取れますか？", [FEE]).startswith(FEE)
    # A question that stands alone stays as asked; so does the first question.
    assert standalone_question("印鑑登録に必要なものは何ですか？", [FEE]) == "印鑑登録に必要なものは何ですか？"
    assert standalone_question("コンビニだと？", []) == "コンビニだと？"


def test_a_models_rewrite_is_kept_unless_it_only_echoes_the_follow_up():
    rule = f"{FEE}（コンビニだと？）"
    assert condensed("書き換えた質問: 「コンビニで住民票の写しを取る手数料は？」\n答え: 200円", "コンビニだと？", rule) \
        == "コンビニで住民票の写しを取る手数料は？"
    assert condensed("コンビニだと?", "コンビニだと？", rule) == rule
    assert condensed("「コンビニ」", "コンビニだと？", rule) == rule
    assert condensed("\n\n", "コンビニだと？", rule) == rule
    # A rewrite that dropped what the follow-up asks about is no rewrite; a paraphrase keeping it is.
    assert condensed(FEE, "コンビニだと？", rule) == rule
    assert condensed("代理人が住民票の写しを取得できますか？", "その場合、代理人でも取れますか？", rule) \
        == "代理人が住民票の写しを取得できますか？"


def test_a_follow_up_is_answered_in_context_and_every_turn_is_audited(server):
    with server.client("user") as client:
        created = client.post("/api/conversations", json={})
        assert created.status_code == 201
        cid = created.json()["id"]
        first = client.post(f"/api/conversations/{cid}/messages", json={"content": FEE}).json()
        assert first["status"] == "ok" and "300円" in first["answer"]
        second = client.post(f"/api/conversations/{cid}/messages", json={"content": "コンビニだと？"}).json()
        # Asked alone, 「コンビニだと？」 finds the opening hours; in context, the convenience-store fee.
        assert second["status"] == "ok" and "200円" in second["answer"], second["answer"]
        assert second["standalone"] == f"{FEE}（コンビニだと？）"
        assert second["sources"] and second["sources"][0]["title"] == "住民票の写しの交付"
        assert '<a class="cite"' in second["html"]
        stored = client.get(f"/api/conversations/{cid}").json()
        assert [t["question"] for t in stored["turns"]] == [FEE, "コンビニだと？"]
        assert stored["title"] == FEE  # the first question names a new conversation
    log = AuditLog(server.settings.base_dir + "/audit.db")
    audited = {e.seq: e.record for e in log.query(kind="ask", limit=100) if e.record.get("conversation_id") == cid}
    assert set(audited) == {first["audit_seq"], second["audit_seq"]}
    assert "コンビニだと" in audited[second["audit_seq"]]["prompt"][-1]["content"]  # the standalone question
    log.close()


def test_a_held_answer_still_carries_its_subject_to_the_follow_up(tmp_path):
    """An answer held for review is not shown, but the question before it was the user's own: the
    follow-up is still read with it (a model condensing the conversation does not see the held text)."""
    served = run_server(make_settings(tmp_path, policy='[local]\ndefault = "allow"\nPHONE_NUMBER = "review"\n'))
    live = next(served)
    try:
        with live.client("admin") as admin:
            upload_and_wait(admin, [CITY / "juminhyo.md"])
        with live.client("user") as client:
            cid = client.post("/api/conversations", json={}).json()["id"]
            question = f"{FEE}連絡先は090-1234-5678です。"
            first = client.post(f"/api/conversations/{cid}/messages", json={"content": question}).json()
            second = client.post(f"/api/conversations/{cid}/messages", json={"content": "コンビニだと？"}).json()
        assert first["status"] == "held"
        assert second["standalone"] == f"{question}（コンビニだと？）"
    finally:
        next(served, None)
    request = condense_request("コンビニだと？", [(question, "")])
    assert "回答" not in request.messages[-1].content and question in request.messages[-1].content


def test_conversations_belong_to_their_owner(server):
    with server.client("user") as owner, httpx.Client(base_url=server.url, headers={
            "Authorization": f"Bearer {server.key('user', 'stranger')}"}) as stranger:
        cid = owner.post("/api/conversations", json={"title": "私の相談"}).json()["id"]
        for method, path, body in [("get", f"/api/conversations/{cid}", None),
                                   ("patch", f"/api/conversations/{cid}", {"title": "奪う"}),
                                   ("delete", f"/api/conversations/{cid}", None),
                                   ("get", f"/api/conversations/{cid}/export", None),
                                   ("post", f"/api/conversations/{cid}/messages", {"content": FEE})]:
            response = stranger.request(method, path, json=body)
            assert response.status_code == 404 and "no such conversation" in response.json()["error"]["message"]
        assert cid not in [c["id"] for c in stranger.get("/api/conversations").json()["conversations"]]
        assert owner.get(f"/api/conversations/{cid}").json()["title"] == "私の相談"


def test_rename_export_and_delete(server):
    with server.client("user") as client:
        cid = client.post("/api/conversations", json={}).json()["id"]
        client.post(f"/api/conversations/{cid}/messages", json={"content": FEE})
        assert client.patch(f"/api/conversations/{cid}", json={"title": "手数料の確認"}).json()["title"] == "手数料の確認"
        markdown = client.get(f"/api/conversations/{cid}/export").text
        assert markdown.startswith("# 手数料の確認\n") and f"## Q1. {FEE}" in markdown and "audit #" in markdown
        exported = json.loads(client.get(f"/api/conversations/{cid}/export", params={"format": "json"}).text)
        assert exported["turns"][0]["question"] == FEE and exported["turns"][0]["sources"]
        assert client.delete(f"/api/conversations/{cid}").status_code == 200
        assert client.get(f"/api/conversations/{cid}").status_code == 404
        assert cid not in [c["id"] for c in client.get("/api/conversations").json()["conversations"]]


def test_streamed_turn_and_regenerate(server):
    with server.client("user") as client:
        cid = client.post("/api/conversations", json={}).json()["id"]
        events = []
        with client.stream("POST", f"/api/conversations/{cid}/messages", json={"content": FEE, "stream": True}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            name = None
            for line in r.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name, json.loads(line[6:])))
        assert [n for n, _ in events][-1] == "done" and any(n == "delta" for n, _ in events)
        streamed = "".join(d["text"] for n, d in events if n == "delta")
        done = events[-1][1]
        assert streamed == done["answer"] and "300円" in done["answer"]
        again = client.post(f"/api/conversations/{cid}/regenerate", json={}).json()
        assert again["n"] == 1 and again["question"] == FEE and again["audit_seq"] != done["audit_seq"]
        assert len(client.get(f"/api/conversations/{cid}").json()["turns"]) == 1


def test_feedback_is_stored_audited_and_only_for_ones_own_answers(server):
    with server.client("user") as client:
        cid = client.post("/api/conversations", json={}).json()["id"]
        turn = client.post(f"/api/conversations/{cid}/messages", json={"content": FEE}).json()
        given = client.post("/api/feedback", json={"audit_seq": turn["audit_seq"], "rating": -1,
                                                   "reason": "古い金額です。担当 090-1234-5678 に確認済み"})
        assert given.status_code == 200
    with server.client("reviewer") as other:
        refused = other.post("/api/feedback", json={"audit_seq": turn["audit_seq"], "rating": 1})
        assert refused.status_code == 403
    log = AuditLog(server.settings.base_dir + "/audit.db")
    records = [e.record for e in log.query(kind="feedback", limit=10) if e.record["audit_seq"] == turn["audit_seq"]]
    assert len(records) == 1 and records[0]["rating"] == -1
    assert "090-1234-5678" not in records[0]["reason"] and "<電話番号_1>" in records[0]["reason"]
    log.close()

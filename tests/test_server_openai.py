"""The official `openai` SDK, unchanged, against a running server: models, completions,
streaming, retrieval answers with sources, personal data masked or blocked per policy, held
answers, and the SDK's own error classes for each refusal."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from server_fixtures.support import (  # noqa: F401
    CITY,
    MY_NUMBER,
    MY_NUMBER_WRONG_CHECK,
    live_server,
    make_settings,
    run_server,
    wait_for_job,
)


def sdk(server, role: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.keys[role], max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def city(live_server):
    with live_server.client("admin") as admin:
        job = admin.post("/api/documents", files=[
            ("files", ("juminhyo.md", (CITY / "juminhyo.md").read_bytes(), "text/markdown")),
            ("files", ("toshokan.txt", (CITY / "toshokan.txt").read_bytes(), "text/plain")),
        ]).json()
        assert wait_for_job(admin, job["id"])["status"] == "done"


def test_models_lists_backends_and_rag_variants(live_server):
    ids = [m.id for m in sdk(live_server, "user").models.list()]
    assert "extractive" in ids and "sekisho-rag/extractive" in ids


def test_plain_completion(live_server):
    result = sdk(live_server, "user").chat.completions.create(
        model="extractive", messages=[{"role": "user", "content": "こんにちは"}])
    assert result.object == "chat.completion" and result.choices[0].message.role == "assistant"
    assert result.choices[0].message.content and result.choices[0].finish_reason == "stop"
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    extra = result.model_extra["sekisho"]
    assert extra["status"] == "ok" and extra["audit_seq"] >= 1


def test_streaming_gives_role_then_content_then_finish(live_server):
    stream = sdk(live_server, "user").chat.completions.create(
        model="extractive", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "図書館について教えてください。"}])
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text and finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_stream_ends_with_done_on_the_wire(live_server):
    body = {"model": "extractive", "stream": True, "messages": [{"role": "user", "content": "こんにちは"}]}
    with live_server.client("user") as c:
        r = c.post("/v1/chat/completions", json=body)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [line for line in r.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)


def test_rag_model_answers_with_citations_and_sources(live_server, city):
    result = sdk(live_server, "user").chat.completions.create(
        model="sekisho-rag/extractive",
        messages=[{"role": "user", "content": "住民票の写しを請求できるのは誰ですか？"}])
    extra = result.model_extra["sekisho"]
    text = result.choices[0].message.content
    assert extra["sources"] and "[" in text
    cited = {s["n"] for s in extra["sources"] if f"[{s['n']}]" in text}
    assert cited, text
    assert any("住民票" in s["title"] for s in extra["sources"])
    assert extra["faithfulness"]["score"] >= 0


def test_rag_by_extra_body_field_and_streaming(live_server, city):
    stream = sdk(live_server, "user").chat.completions.create(
        model="extractive", stream=True, extra_body={"sekisho": {"rag": True, "k": 3}},
        messages=[{"role": "user", "content": "図書館の休館日はいつですか？"}])
    chunks = list(stream)
    last = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
    sources = last.model_extra["sekisho"]["sources"]
    assert len(sources) <= 3 and any("図書館" in s["title"] for s in sources)


def test_my_number_is_masked_before_the_model_and_never_echoed(live_server):
    # Built-in policy, local backend: MY_NUMBER -> mask. The extractive backend echoes nothing
    # from a plain prompt, so the audit log is where masking is visible.
    result = sdk(live_server, "user").chat.completions.create(
        model="extractive", messages=[{"role": "user", "content": f"私の個人番号は{MY_NUMBER}です。"}])
    findings = result.model_extra["sekisho"]["findings"]
    assert [(f["entity"], f["action"]) for f in findings] == [("MY_NUMBER", "mask")]
    assert MY_NUMBER not in json.dumps(result.model_dump(), ensure_ascii=False)
    with live_server.client("auditor") as auditor:
        export = auditor.get("/api/audit/export").text
    assert MY_NUMBER not in export and "<マイナンバー_1>" in export


def test_number_with_a_wrong_check_digit_is_not_personal_data(live_server):
    result = sdk(live_server, "user").chat.completions.create(
        model="extractive", messages=[{"role": "user", "content": f"受付番号は{MY_NUMBER_WRONG_CHECK}です。"}])
    assert not [f for f in result.model_extra["sekisho"]["findings"] if f["entity"] == "MY_NUMBER"]


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory):
    """An organisation whose policy blocks My Number even for local models and holds every
    output of the user role for review."""
    policy = '[local]\nMY_NUMBER = "block"\n\n[review]\nroles = ["user"]\n'
    yield from run_server(make_settings(tmp_path_factory.mktemp("strict"), policy=policy))


def test_my_number_blocked_per_policy_is_400_and_not_echoed(strict_server):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(strict_server, "admin").chat.completions.create(
            model="extractive", messages=[{"role": "user", "content": f"個人番号{MY_NUMBER}の住所を教えて"}])
    error = caught.value.body
    assert caught.value.status_code == 400 and error["code"] == "guard_blocked"
    assert "マイナンバー" in error["message"] and MY_NUMBER not in json.dumps(error, ensure_ascii=False)


def test_blocked_stream_is_an_error_not_an_empty_stream(strict_server):
    with pytest.raises(openai.BadRequestError):
        list(sdk(strict_server, "admin").chat.completions.create(
            model="extractive", stream=True, messages=[{"role": "user", "content": f"番号 {MY_NUMBER}"}]))


def test_held_answer_is_released_after_approval(strict_server):
    result = sdk(strict_server, "user").chat.completions.create(
        model="extractive", messages=[{"role": "user", "content": "こんにちは"}])
    extra = result.model_extra["sekisho"]
    assert extra["status"] == "held" and result.choices[0].finish_reason == "content_filter"
    assert f"レビュー番号 {extra['review_id']}" in result.choices[0].message.content
    with strict_server.client("user") as user, strict_server.client("reviewer") as reviewer:
        early = user.post(f"/api/reviews/{extra['review_id']}/release")
        assert early.status_code == 409
        assert reviewer.post(f"/api/reviews/{extra['review_id']}/approve", json={}).status_code == 200
        assert reviewer.post(f"/api/reviews/{extra['review_id']}/release").status_code == 403  # not theirs
    with strict_server.client("auditor") as auditor:
        denial = auditor.get("/api/audit", params={"kind": "access.denied", "limit": 1}).json()["entries"][0]
    assert denial["record"]["review_id"] == extra["review_id"] and denial["record"]["status"] == 403
    with strict_server.client("user") as user:
        released = user.post(f"/api/reviews/{extra['review_id']}/release")
    assert released.status_code == 200 and released.json()["text"]


def test_wrong_role_is_permission_denied(live_server):
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk(live_server, "auditor").chat.completions.create(
            model="extractive", messages=[{"role": "user", "content": "こんにちは"}])
    assert "auditor" in caught.value.body["message"]


def test_bad_key_is_authentication_error(live_server):
    client = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="sk-skh-00000000_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_unknown_model_is_not_found(live_server):
    with pytest.raises(openai.NotFoundError) as caught:
        sdk(live_server, "user").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["code"] == "model_not_found"


def test_malformed_request_is_bad_request(live_server):
    with pytest.raises(openai.BadRequestError):
        sdk(live_server, "user").chat.completions.create(model="extractive", messages=[])
    with live_server.client("user") as c:
        r = c.post("/v1/chat/completions", json={"model": "extractive",
                                                  "messages": [{"role": "wizard", "content": "x"}]})
    assert r.status_code == 400 and r.json()["error"]["param"].startswith("messages")


def test_too_large_request_is_413(live_server):
    huge = "あ" * (2 * 1024 * 1024)  # 6 MB of UTF-8, over the 4 MB limit for JSON bodies
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(live_server, "user").chat.completions.create(model="extractive",
                                                         messages=[{"role": "user", "content": huge}])
    assert caught.value.status_code == 413


def test_embeddings_come_from_the_knowledge_base_embedder(live_server):
    result = sdk(live_server, "user").embeddings.create(model="use-m3", input=["住民票", "図書館の利用案内"])
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 512
    norm = sum(v * v for v in result.data[0].embedding) ** 0.5
    assert abs(norm - 1.0) < 1e-3
    with pytest.raises(openai.NotFoundError):
        sdk(live_server, "user").embeddings.create(model="text-embedding-3-small", input="x")
    with live_server.client("auditor") as auditor:
        [entry] = auditor.get("/api/audit", params={"kind": "embeddings", "limit": 1}).json()["entries"]
    assert entry["record"]["inputs"] == 2 and "住民票" not in json.dumps(entry, ensure_ascii=False)


def test_rate_limited_sdk_call_is_429(tmp_path):
    for server in run_server(make_settings(tmp_path, rate_limit=2)):
        client = sdk(server, "user")
        client.models.list()
        client.models.list()
        with pytest.raises(openai.RateLimitError):
            client.models.list()
        assert httpx.get(f"{server.url}/v1/models",
                         headers={"Authorization": f"Bearer {server.keys['user']}"}).status_code == 429


def test_provenance_of_an_answer_verifies_offline(live_server, city, tmp_path):
    from sekisho.audit.provenance import verify_manifest

    result = sdk(live_server, "user").chat.completions.create(
        model="sekisho-rag/extractive", messages=[{"role": "user", "content": "図書館の開館時間は？"}])
    seq = result.model_extra["sekisho"]["audit_seq"]
    with live_server.client("auditor") as auditor, live_server.client("user") as user:
        assert user.get(f"/api/provenance/{seq}").status_code == 403
        bundle = auditor.get(f"/api/provenance/{seq}")
        assert auditor.get("/api/provenance/999999").status_code == 404
    assert bundle.status_code == 200
    path = tmp_path / "answer.json"
    path.write_bytes(bundle.content)
    check = verify_manifest(path)
    assert check.ok, check.reason
    assert json.loads(bundle.content)["content"] == result.choices[0].message.content
    path.write_bytes(bundle.content.replace("図書館".encode(), "美術館".encode(), 1))
    assert not verify_manifest(path).ok


def test_unreachable_backend_is_502_and_the_server_keeps_serving(tmp_path):
    vendor = ('[models.backends.extractive]\nkind = "extractive"\nlocal = true\n'
              '[models.backends.vendor]\nkind = "openai"\nmodel = "gpt-x"\nbase_url = "http://127.0.0.1:9/v1"\n'
              'timeout_s = 5\n')
    for server in run_server(make_settings(tmp_path, extra_toml=vendor)):
        client = sdk(server, "user")
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="vendor", messages=[{"role": "user", "content": "こんにちは"}])
        assert caught.value.status_code == 502 and caught.value.body["code"] == "backend_error"
        assert client.chat.completions.create(
            model="extractive", messages=[{"role": "user", "content": "こんにちは"}]).choices[0].message.content

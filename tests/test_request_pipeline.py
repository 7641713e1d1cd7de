"""The request path end to end: personal data to an external backend (the real OpenAI-compatible HTTP
backend against a real llama.cpp server, declared external) is blocked or masked per policy and
never reaches the audit database; confidential documents are routed to the local backend; held
outputs wait for a reviewer; masks come back for the requester only; roles and backend failures
are audited."""

from __future__ import annotations

import hashlib
import hmac
import socket

import pytest
from cryptography.hazmat.primitives import serialization

from conftest import LLAMA_SERVER_MODEL
from sekisho.answer import request_for_passages
from sekisho.audit.review import ReviewError, ReviewPermissionError
from sekisho.config import BackendConfig, Settings
from sekisho.identity import Principal, Role
from sekisho.models import BackendError, ChatRequest, Message, Passage
from sekisho.request import RequestPath

# A My Number with its check digit computed by hand (番号法施行令 8条): for the first 11 digits
# 1 2 3 4 5 6 7 8 9 0 1, weights (from the right) 2 3 4 5 6 7 2 3 4 5 6 give
# 1*2 + 0*3 + 9*4 + 8*5 + 7*6 + 6*7 + 5*2 + 4*3 + 3*4 + 2*5 + 1*6 = 212; 212 mod 11 = 3;
# check digit 11 - 3 = 8.
MY_NUMBER = "123456789018"

ALICE = Principal("alice", Role.USER)
BOB = Principal("bob", Role.USER)
RIN = Principal("rin", Role.REVIEWER)


def _settings(tmp_path, vendor_url="http://127.0.0.1:9/v1", policy=None) -> Settings:
    data = {
        "base_dir": str(tmp_path),
        "models": {"default": "extractive", "backends": {
            "extractive": {"kind": "extractive", "local": True},
            "vendor": {"kind": "openai", "base_url": vendor_url, "model": LLAMA_SERVER_MODEL, "local": False,
                       "timeout_s": 120},
        }},
        "audit": {"path": "audit.db", "key_path": "signing.key", "checkpoint_every": 5},
    }
    if policy is not None:
        (tmp_path / "policy.toml").write_text(policy, encoding="utf-8")
        data["guard"] = {"policy": "policy.toml"}
    return Settings.model_validate(data)


def _audit_bytes(tmp_path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("audit.db*"))


def _chat(text: str, max_tokens: int = 24) -> ChatRequest:
    return ChatRequest(messages=[Message("user", text)], max_tokens=max_tokens)


def test_my_number_to_external_backend_is_blocked_and_audited_masked(tmp_path, llama_server_url):
    request_path = RequestPath(_settings(tmp_path, llama_server_url))
    result = request_path.complete(_chat(f"私のマイナンバーは{MY_NUMBER}です。転出届の手続きを教えて。"),
                              backend="vendor", principal=ALICE)
    assert result.status == "blocked" and result.completion is None
    assert "マイナンバー" in result.message and "MY_NUMBER" in result.message
    assert MY_NUMBER not in result.message
    assert [(f.entity, f.where, f.action) for f in result.findings] == [("MY_NUMBER", "message[0]", "block")]
    record = request_path.audit.get(result.audit_seq).record
    assert record["status"] == "blocked" and record["principal"] == "alice"
    assert record["prompt"][0]["content"] == "私のマイナンバーは<マイナンバー_1>です。転出届の手続きを教えて。"
    assert record["backend"]["local"] is False
    assert MY_NUMBER.encode() not in _audit_bytes(tmp_path)
    assert request_path.audit.verify().ok


def test_my_number_masked_for_external_backend_when_policy_says_mask(tmp_path, llama_server_url):
    request_path = RequestPath(_settings(tmp_path, llama_server_url, policy='[external]\nMY_NUMBER = "mask"\n'))
    result = request_path.complete(_chat(f"番号{MY_NUMBER}の山田様へのお知らせを一文で書いてください。"),
                              backend="vendor", principal=ALICE)
    assert result.status == "ok" and result.backend == "vendor"
    assert result.completion.model and result.completion.completion_tokens > 0
    assert ("MY_NUMBER", "mask", "<マイナンバー_1>") in [(f.entity, f.action, f.placeholder) for f in result.findings]
    record = request_path.audit.get(result.audit_seq).record
    assert "<マイナンバー_1>" in record["prompt"][0]["content"]
    assert record["backend"] == {"requested": "vendor", "used": "vendor", "kind": "openai",
                                 "model": record["backend"]["model"], "version": record["backend"]["version"],
                                 "local": False}
    # The keyed hash as an investigator would compute it from the signing key alone: HMAC-SHA256
    # under sha256("sekisho-audit-value-hmac\0" + the raw Ed25519 private key).
    raw = serialization.load_pem_private_key((tmp_path / "signing.key").read_bytes(), password=None).private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    mac_key = hashlib.sha256(b"sekisho-audit-value-hmac\x00" + raw).digest()
    assert record["masked_values"] == [hmac.new(mac_key, MY_NUMBER.encode(), hashlib.sha256).hexdigest()]
    assert [e.seq for e in request_path.audit.find_value(MY_NUMBER)] == [result.audit_seq]
    assert MY_NUMBER.encode() not in _audit_bytes(tmp_path)


def test_confidential_marking_routes_to_the_local_backend(tmp_path, llama_server_url):
    request_path = RequestPath(_settings(tmp_path, llama_server_url))
    result = request_path.complete(_chat("【社外秘】来期の窓口体制の案を要約してください。"), backend="vendor", principal=ALICE)
    assert result.status == "ok"
    assert result.requested_backend == "vendor" and result.backend == "extractive"
    record = request_path.audit.get(result.audit_seq).record
    assert record["backend"]["used"] == "extractive" and record["backend"]["local"] is True


def _grounded(question: str, text: str) -> ChatRequest:
    return request_for_passages(question, [Passage(1, "doc:0", "住民記録", text)])


def test_local_answer_restores_masked_values_for_the_requester(tmp_path):
    request_path = RequestPath(_settings(tmp_path))
    request = _grounded("山田太郎さんのマイナンバーは何番ですか", f"山田太郎さんのマイナンバーは{MY_NUMBER}です。窓口は市民課です。")
    result = request_path.complete(request, backend="extractive", principal=ALICE)
    assert result.status == "ok"
    assert MY_NUMBER in result.completion.text and "<マイナンバー_1>" not in result.completion.text
    record = request_path.audit.get(result.audit_seq).record
    assert "<マイナンバー_1>" in record["output"] and record["chunk_ids"] == ["doc:0"]
    assert {(f["entity"], f["where"], f["action"]) for f in record["findings"]} >= {
        ("MY_NUMBER", "passage[1]", "mask"), ("MY_NUMBER", "message[1]", "mask")}
    assert MY_NUMBER.encode() not in _audit_bytes(tmp_path)


def test_external_use_is_held_until_approved_and_released_to_the_requester_only(tmp_path):
    request_path = RequestPath(_settings(tmp_path))
    request = _grounded("山田太郎さんのマイナンバーは何番ですか", f"山田太郎さんのマイナンバーは{MY_NUMBER}です。")
    result = request_path.complete(request, backend="extractive", principal=ALICE, purpose="external")
    assert result.status == "held" and result.completion is None and result.review_id is not None
    assert f"レビュー番号 {result.review_id}" in result.message
    [item] = request_path.review.list("pending")
    assert item.id == result.review_id and item.audit_seq == result.audit_seq
    assert "<マイナンバー_1>" in item.output and MY_NUMBER not in item.output
    with pytest.raises(ReviewError, match="awaiting review"):
        request_path.release(result.review_id, ALICE)
    request_path.review.approve(result.review_id, RIN, note="確認済み")
    with pytest.raises(ReviewPermissionError):
        request_path.release(result.review_id, BOB)
    released = request_path.release(result.review_id, ALICE)
    assert released.status == "ok" and MY_NUMBER in released.completion.text
    kinds = [e.kind for e in request_path.audit.query(newest_first=False)]
    assert kinds[:4] == ["chat", "review.hold", "review.decision", "review.release"]
    assert MY_NUMBER.encode() not in _audit_bytes(tmp_path)


def test_auditor_role_may_not_generate(tmp_path):
    request_path = RequestPath(_settings(tmp_path))
    result = request_path.complete(_chat("こんにちは"), backend="extractive", principal=Principal("kansa", Role.AUDITOR))
    assert result.status == "blocked" and "auditor" in result.message
    assert request_path.audit.get(result.audit_seq).record["reason"] == "role:auditor"


def test_backend_failure_is_audited_then_raised(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    request_path = RequestPath(_settings(tmp_path, f"http://127.0.0.1:{port}/v1",
                                policy='[external]\ndefault = "allow"\n'))
    with pytest.raises(BackendError):
        request_path.complete(_chat("こんにちは", 4), backend="vendor", principal=ALICE)
    [entry] = request_path.audit.query(kind="chat")
    assert entry.record["status"] == "error" and entry.record["error"]


def _with_local_scorer(tmp_path, gguf_path) -> Settings:
    settings = _settings(tmp_path)
    backends = {**settings.models.backends, "q": BackendConfig(kind="llama.cpp", model=str(gguf_path),
                                                                context_tokens=512, options={"n_threads": 2})}
    return settings.model_copy(update={"models": settings.models.model_copy(update={"backends": backends})})


def test_choices_are_scored_through_the_request_path_and_audited_with_personal_data_masked(tmp_path, gguf_qwen05b_path):
    request_path = RequestPath(_with_local_scorer(tmp_path, gguf_qwen05b_path))
    choices = ["東京", "大阪", f"マイナンバー{MY_NUMBER}"]
    result = request_path.choose(_chat("日本の首都はどこですか。\n答え:"), choices, backend="q", principal=ALICE)
    assert result.status == "ok" and result.backend == "q"
    record = request_path.audit.get(result.audit_seq).record
    scores = record["choice_logprobs"]
    assert len(scores) == 3 and result.text == choices[scores.index(max(scores))]
    assert record["output"] == result.text and record["prompt"][-1]["content"].startswith("日本の首都")
    # The audit keeps every choice, each finding replaced, as it does for prompts.
    assert record["choices"][:2] == ["東京", "大阪"] and MY_NUMBER not in record["choices"][2]
    assert [f["where"] for f in record["findings"]] == ["choice[2]"]
    assert MY_NUMBER.encode() not in _audit_bytes(tmp_path)


def test_choosing_needs_a_backend_that_scores_replies_and_a_role_that_may_generate(tmp_path):
    request_path = RequestPath(_settings(tmp_path))
    with pytest.raises(BackendError, match="cannot score choices"):
        request_path.choose(_chat("日本の首都は"), ["東京", "大阪"], backend="extractive", principal=ALICE)
    [entry] = request_path.audit.query(kind="choice")
    assert entry.record["status"] == "error" and entry.record["choices"] == ["東京", "大阪"]
    blocked = request_path.choose(_chat("日本の首都は"), ["東京", "大阪"], backend="extractive",
                             principal=Principal("kansa", Role.AUDITOR))
    assert blocked.status == "blocked" and blocked.completion is None


def test_stream_yields_restored_text_and_audits_once(tmp_path):
    request_path = RequestPath(_settings(tmp_path))
    request = _grounded("山田太郎さんのマイナンバーは何番ですか", f"山田太郎さんのマイナンバーは{MY_NUMBER}です。")
    stream = request_path.stream(request, backend="extractive", principal=ALICE)
    text = "".join(stream)
    assert MY_NUMBER in text
    assert stream.result.status == "ok" and stream.result.completion.text == text
    record = request_path.audit.get(stream.result.audit_seq).record
    assert record["streamed"] is True and MY_NUMBER not in record["output"]


WORK = "霧の港に月が落ちるころ、灯台守は古い手紙をもう一度ひらいた。波は言葉を持たず、ただ繰り返し岸を撫でていた。"


def _with_registry(tmp_path) -> Settings:
    (tmp_path / "registry.toml").write_text(
        '[[creator]]\nname = "霧島 透"\naliases = ["霧島透"]\n\n'
        f'[[work]]\ntitle = "月影の港"\ncreator = "霧島 透"\ntext = "{WORK}"\n', encoding="utf-8")
    settings = _settings(tmp_path)
    return settings.model_copy(update={"guard": settings.guard.model_copy(update={"copyright_registry": "registry.toml"})})


def test_style_imitation_prompt_is_blocked_for_external_and_held_for_local(tmp_path):
    request_path = RequestPath(_with_registry(tmp_path))
    external = request_path.complete(_chat("霧島透風に、市報の挨拶文を書いてください。"), backend="vendor", principal=ALICE)
    assert external.status == "blocked" and "COPYRIGHT_STYLE" in external.message
    local = request_path.complete(_chat("霧島透風に、市報の挨拶文を書いてください。"), backend="extractive", principal=ALICE)
    assert local.status == "held" and "entity:COPYRIGHT_STYLE" in request_path.review.get(local.review_id).reasons


def test_output_copying_a_registered_work_is_held(tmp_path):
    request_path = RequestPath(_with_registry(tmp_path))
    request = _grounded("灯台守は何をひらいたか", WORK)
    result = request_path.complete(request, backend="extractive", principal=ALICE)
    assert result.status == "held" and result.completion is None
    assert request_path.review.get(result.review_id).reasons == ["copyright"]
    assert ("COPYRIGHT_SIMILAR", "output") in [(f.entity, f.where) for f in result.findings]


def test_route_target_named_by_a_policy_file_must_exist(tmp_path):
    from sekisho.guard.policy import PolicyError

    with pytest.raises(PolicyError, match=r"policy\.toml: route_local_backend: backend 'onprem' is not configured"):
        RequestPath(_settings(tmp_path, policy='route_local_backend = "onprem"\n'))


def test_builtin_policy_routes_to_the_first_local_backend_when_extractive_is_absent(tmp_path):
    settings = Settings.model_validate({
        "base_dir": str(tmp_path),
        "models": {"default": "vendor", "backends": {
            "vendor": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", "local": False},
            "onprem": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", "local": True,
                       "timeout_s": 2, "options": {"max_retries": 0}},
        }},
        "audit": {"path": "audit.db", "key_path": "signing.key"},
    })
    request_path = RequestPath(settings)
    with pytest.raises(BackendError):  # nothing listens on port 9: the routed call fails, and is audited
        request_path.complete(_chat("社外秘の資料です。要約して。"), backend="vendor", principal=ALICE)
    [entry] = request_path.audit.query(kind="chat")
    assert entry.record["backend"]["requested"] == "vendor" and entry.record["backend"]["used"] == "onprem"
    assert entry.record["status"] == "error"


def test_stream_stops_before_a_sentence_copying_a_registered_work(tmp_path):
    request_path = RequestPath(_with_registry(tmp_path))
    stream = request_path.stream(_grounded("灯台守は何をひらいたか", WORK), backend="extractive", principal=ALICE)
    shown = "".join(stream)
    assert "灯台守" not in shown  # the copied sentence never reached the user
    assert stream.result.status == "held" and stream.result.completion is None
    assert request_path.review.get(stream.result.review_id).reasons == ["copyright"]


def test_stream_abandoned_by_the_reader_is_audited(tmp_path):
    request_path = RequestPath(_settings(tmp_path))
    passage = "転入届は14日以内に提出します。窓口は市民課です。郵送でも受け付けます。"
    stream = iter(request_path.stream(_grounded("転入届の窓口と期限と郵送は", passage), backend="extractive", principal=ALICE))
    first = next(stream)
    stream.close()  # the client disconnected after the first sentence
    [entry] = request_path.audit.query(kind="chat")
    assert entry.record["status"] == "cancelled" and entry.record["shown_chars"] == len(first)


def test_release_after_a_restart_keeps_values_masked_and_says_so(tmp_path):
    settings = _settings(tmp_path)
    request = _grounded("山田太郎さんのマイナンバーは何番ですか", f"山田太郎さんのマイナンバーは{MY_NUMBER}です。")
    held = RequestPath(settings).complete(request, backend="extractive", principal=ALICE, purpose="external")
    restarted = RequestPath(settings)  # a new process: the in-memory mapping is gone, by design
    restarted.review.approve(held.review_id, RIN)
    released = restarted.release(held.review_id, ALICE)
    assert "<マイナンバー_1>" in released.completion.text and MY_NUMBER not in released.completion.text
    assert "伏せ字" in released.message


# --- the streaming gate: bounded work on long outputs ---------------------------------------------

def test_the_gate_releases_sentence_by_sentence_and_holds_at_the_first_failure():
    from sekisho.request.streaming import Gate

    gate = Gate(lambda text: "禁止" not in text, max_chars=1000)
    assert [gate.feed(p) for p in ("こんに", "ちは。元", "気です。", "禁止の話。", "続き。")] == ["", "こんにちは。", "元気です。", "", ""]
    assert gate.held and gate.finish() == "" and gate.text == "こんにちは。元気です。禁止の話。続き。"


def test_the_gate_checks_a_long_output_a_bounded_number_of_times():
    """Every check reads the whole output so far: checking each of 20,000 sentences would read
    the output 20,000 times. Past the first sentences, a check waits for a tenth more text."""
    from sekisho.request.streaming import Gate

    checks = []
    gate = Gate(lambda text: checks.append(len(text)) or True, max_chars=10**7)
    shown = "".join(gate.feed("これは一文です。") for _ in range(20_000)) + gate.finish()
    assert shown == "これは一文です。" * 20_000
    assert len(checks) < 400 and sum(checks) < 20 * len(shown)  # each sentence checked: 20,000 and 10,000x


def test_the_gate_stops_an_output_longer_than_the_checks_read():
    from sekisho.guard import ScanBudgetExceeded
    from sekisho.request.streaming import Gate

    gate = Gate(None, max_chars=100)
    assert gate.feed("あ" * 60) == "" and gate.feed("。") == "あ" * 60 + "。"
    with pytest.raises(ScanBudgetExceeded):
        gate.feed("い" * 40)

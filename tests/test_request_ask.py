"""RequestPath.ask over a real knowledge base (SQLite store, Japanese tokeniser, e5 embeddings): the
principal's access tags bound retrieval, sources land in the audit record with content hashes,
and the answer's faithfulness report is recorded (the hold rule itself: test_policy_rules)."""

from __future__ import annotations

import pytest

from sekisho.config import Settings
from sekisho.identity import Principal, Role
from sekisho.ingest import ingest_text
from sekisho.models import BackendError
from sekisho.request import NO_PASSAGES, RequestPath
from sekisho.retrieval import open_knowledge_base

NOTICE = ("転入届は、引っ越してから14日以内に市民課へ提出してください。"
          "届出にはマイナンバーカードまたは本人確認書類が必要です。")
SECRET = "【職員限定】来年度の窓口の人員配置は12名とする。"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("ask")
    settings = Settings.model_validate({"base_dir": str(root), "store": {"path": "kb.db"},
                                        "audit": {"path": "audit.db", "key_path": "signing.key"}})
    kb = open_knowledge_base(settings)
    ingest_text(kb, path="notices/tennyu.md", title="転入届のご案内", text=NOTICE)
    ingest_text(kb, path="internal/staff.md", title="人員配置", text=SECRET, tags=("staff",))
    yield RequestPath(settings), kb
    kb.close()


def test_answer_is_sourced_and_audited(world):
    request_path, kb = world
    result = request_path.ask("転入届はいつまでに出せばよいですか", principal=Principal("alice", Role.USER),
                         backend="extractive", kb=kb, k=3)
    assert result.status == "ok", result.message
    assert "14日以内" in result.answer.text
    record = request_path.audit.get(result.audit_seq).record
    assert record["purpose"] == "answer" and record["faithfulness"]["score"] >= 0.5
    [source] = record["sources"]  # the staff-only notice is invisible to an untagged user
    assert source["path"] == "notices/tennyu.md" and len(source["chunk_sha256"]) == 64
    assert record["chunk_ids"] == [source["chunk_id"]]


def test_tags_bound_what_the_request_path_retrieves(world):
    request_path, kb = world
    staff = request_path.ask("来年度の窓口の人員配置は何名ですか", principal=Principal("sato", Role.USER, ("staff",)),
                        backend="extractive", kb=kb, k=3)
    assert staff.status == "ok" and "12名" in staff.answer.text
    outsider = request_path.ask("来年度の窓口の人員配置は何名ですか", principal=Principal("alice", Role.USER),
                           backend="extractive", kb=kb, k=3)
    assert outsider.answer is None or "12名" not in outsider.answer.text


def test_streamed_answer_matches_and_is_audited_once(world):
    request_path, kb = world
    before = request_path.audit.head()[0]
    stream = request_path.ask_stream("転入届はいつまでに出せばよいですか", principal=Principal("alice", Role.USER),
                                backend="extractive", kb=kb, k=3)
    text = "".join(stream)
    assert stream.result.status == "ok" and stream.result.answer.text == text and "14日以内" in text
    record = request_path.audit.get(stream.result.audit_seq).record
    assert record["streamed"] is True and record["sources"][0]["path"] == "notices/tennyu.md"
    assert [e.kind for e in request_path.audit.query(newest_first=False, limit=1000) if e.seq > before] == ["ask"]


def test_auditor_gets_no_streamed_answer(world):
    request_path, kb = world
    stream = request_path.ask_stream("転入届の期限は", principal=Principal("kansa", Role.AUDITOR), backend="extractive", kb=kb)
    assert "".join(stream) == ""
    assert stream.result.status == "blocked" and stream.result.answer is None


def test_question_outside_the_documents_reaches_the_model_without_passages(world, tmp_path):
    request_path, kb = world
    result = request_path.ask("火星探査機の打ち上げ予定日は？", principal=Principal("alice", Role.USER),
                         backend="extractive", kb=kb, k=3)
    assert result.status == "ok" and result.answer.text == "資料に記載がありません"
    assert result.answer.hits == [] and request_path.audit.get(result.audit_seq).record["sources"] == []
    ungated = Settings.model_validate({"base_dir": str(tmp_path), "retrieval": {"min_score": 0.0},
                                       "audit": {"path": "audit.db", "key_path": "signing.key"}})
    result = RequestPath(ungated).ask("火星探査機の打ち上げ予定日は？", principal=Principal("alice", Role.USER),
                                  backend="extractive", kb=kb, k=3)
    assert result.answer.hits  # the floor, not an empty index, kept the passages back


def test_no_model_is_asked_a_question_no_passage_supports(world, tmp_path):
    # The configured model is an endpoint nobody listens on: calling it would raise. With no passage
    # to answer from, the built-in answerer says so instead, and the audit record says who answered.
    _, kb = world
    settings = Settings.model_validate({
        "base_dir": str(tmp_path), "audit": {"path": "audit.db", "key_path": "signing.key"},
        "models": {"backends": {"extractive": {"kind": "extractive"},
                                "vendor": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m",
                                           "timeout_s": 2.0}}}})
    request_path = RequestPath(settings)
    result = request_path.ask("火星探査機の打ち上げ予定日は？", principal=Principal("alice", Role.USER), backend="vendor", kb=kb)
    assert result.status == "ok" and result.answer.text == "資料に記載がありません" and result.answer.not_found
    backend = request_path.audit.get(result.audit_seq).record["backend"]
    assert backend["requested"] == "vendor" and backend["used"] == NO_PASSAGES and backend["kind"] == "extractive"
    streamed = request_path.ask_stream("火星探査機の打ち上げ予定日は？", principal=Principal("alice", Role.USER),
                                  backend="vendor", kb=kb)
    assert "".join(streamed) == "資料に記載がありません" and streamed.result.status == "ok"
    with pytest.raises(BackendError):  # the same endpoint, given passages, is really called
        request_path.ask("転入届の期限は", principal=Principal("alice", Role.USER), backend="vendor", kb=kb)


@pytest.mark.parametrize(("share", "sources"), [(0.0, 2), (1.0, 1)])
def test_configured_share_bounds_the_passages_given_to_the_model(world, tmp_path, share, sources):
    _, kb = world
    settings = Settings.model_validate({"base_dir": str(tmp_path), "retrieval": {"min_relative_score": share},
                                        "audit": {"path": "audit.db", "key_path": "signing.key"}})
    staff = Principal("sato", Role.USER, ("staff",))  # sees both documents
    result = RequestPath(settings).ask("転入届はいつまでに出せばよいですか", principal=staff, backend="extractive",
                                   kb=kb, k=3)
    assert result.status == "ok" and "14日以内" in result.answer.text
    assert len(result.answer.hits) == sources


def test_a_backend_can_be_limited_to_fewer_passages(world, tmp_path):
    _, kb = world
    settings = Settings.model_validate({
        "base_dir": str(tmp_path), "retrieval": {"min_relative_score": 0.0},
        "models": {"backends": {"extractive": {"kind": "extractive", "local": True},
                                "small": {"kind": "extractive", "local": True, "max_passages": 1}}},
        "audit": {"path": "audit.db", "key_path": "signing.key"}})
    staff = Principal("sato", Role.USER, ("staff",))
    request_path = RequestPath(settings)
    everything = request_path.ask("転入届はいつまでに出せばよいですか", principal=staff, backend="extractive", kb=kb, k=3)
    limited = request_path.ask("転入届はいつまでに出せばよいですか", principal=staff, backend="small", kb=kb, k=3)
    assert len(everything.answer.hits) == 2
    assert limited.answer.hits == everything.answer.hits[:1] and "14日以内" in limited.answer.text


def test_a_turn_routed_to_a_local_backend_gets_that_backends_passage_limit(tmp_path):
    # The passages are chosen for the backend asked for; when a confidential passage reroutes the
    # turn to the on-premises one, that backend's own limit applies to what it is given.
    (tmp_path / "policy.toml").write_text('route_local_backend = "small"\n[external]\nCONFIDENTIAL = "route_local"\n',
                                          encoding="utf-8")
    settings = Settings.model_validate({
        "base_dir": str(tmp_path), "store": {"path": "kb.db"}, "retrieval": {"min_relative_score": 0.0},
        "guard": {"policy": "policy.toml"},
        "models": {"backends": {"vendor": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m",
                                           "local": False},
                                "small": {"kind": "extractive", "local": True, "max_passages": 1}}},
        "audit": {"path": "audit.db", "key_path": "signing.key"}})
    with open_knowledge_base(settings) as kb:
        ingest_text(kb, path="internal/plan.md", title="窓口体制",
                    text="【部外秘】来年度の窓口の人員配置は12名とする。")
        ingest_text(kb, path="notices/tennyu.md", title="転入届のご案内", text=NOTICE)
        request_path = RequestPath(settings)
        result = request_path.ask("来年度の窓口の人員配置は何名ですか", principal=Principal("sato", Role.USER),
                             backend="vendor", kb=kb, k=3)
        everything = kb.search("来年度の窓口の人員配置は何名ですか", k=3)
    assert len(everything) == 2  # both documents would have gone to the vendor
    assert result.status == "ok" and result.backend == "small" and "12名" in result.answer.text
    record = request_path.audit.get(result.audit_seq).record
    assert record["chunk_ids"] == [everything[0].chunk.id] and len(result.answer.hits) == 1
    assert [s["path"] for s in record["sources"]] == ["internal/plan.md"]
    assert "転入届" not in "".join(m["content"] for m in record["prompt"])  # never reached the model

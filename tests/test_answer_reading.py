"""Reading each passage apart (read_passages = "each"): the rule that keeps one reading, the
passages such a backend is given, the config check, and the request path path with a real llama.cpp
model, audited reading by reading."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sekisho.answer.reading import EACH_LIMIT, EACH_SHARE, Reading, best_reading, passage_policy, read_each
from sekisho.config import BackendConfig, ConfigError, GuardConfig, Settings, load_settings
from sekisho.identity import Principal, Role
from sekisho.ingest import ingest_text
from sekisho.models import ChatRequest, Completion, Message, Passage, open_backend
from sekisho.request import RequestPath
from sekisho.retrieval import open_knowledge_base
from sekisho.text import answer_context


def _reading(text: str, probability: float, answer_lp: float, not_found_lp: float, context: float = 0.0) -> Reading:
    request = ChatRequest([Message("user", "q")])
    return Reading(request, Completion(text, "m", 1, 1), probability, answer_lp, not_found_lp, context)


def test_the_reading_kept_weighs_retrieval_against_how_much_the_model_believes_its_answer():
    # log 0.6 + 2 (-7 + 4) = -6.5 against log 0.3 + 2 (-1 + 8) = 12.8: the model invented an answer
    # from the better-retrieved passage and knows it.
    doubted, believed = _reading("月曜日 [1]", 0.6, -7.0, -4.0), _reading("火曜日 [1]", 0.3, -1.0, -8.0)
    assert best_reading([doubted, believed]) == 1
    # Equal belief: retrieval decides.
    assert best_reading([_reading("a", 0.6, -1.0, -5.0), _reading("b", 0.3, -1.0, -5.0)]) == 0


def test_an_answer_from_a_sentence_about_the_question_beats_an_equally_believed_one():
    question = "第1回国会はいつ？"
    history = "1970年7月の第11回大会で、革新統一戦線の結成を呼びかけた。"
    diet = "1947年の第1回国会以降、2016年まで国会開会式を欠席した。"
    assert answer_context(question, "1947年 [1]", diet) == 1.0
    assert answer_context(question, "1970年7月 [1]", history) < 0.5
    assert answer_context(question, "1945年 [1]", diet) == 0.0  # not in the passage as written
    # The model is a little surer of the wrong date and its passage ranked higher; the sentence it
    # came from is about something else.
    wrong = _reading("1970年7月 [1]", 0.5, -0.1, -6.0, answer_context(question, "1970年7月", history))
    right = _reading("1947年 [1]", 0.4, -0.4, -5.9, answer_context(question, "1947年", diet))
    assert best_reading([wrong, right]) == 1
    assert best_reading([_reading("1970年7月 [1]", 0.5, -0.1, -6.0), _reading("1947年 [1]", 0.4, -0.4, -5.9)]) == 0


def test_the_answer_more_likely_with_every_passage_in_view_wins_between_equals():
    # Each passage alone makes its own answer look right; shown both, the model prefers one.
    first, second = _reading("都道府県委員会総会 [1]", 0.9, -0.5, -8.0), _reading("地区委員会総会 [1]", 0.9, -0.5, -8.0)
    assert best_reading([replace(first, together=-6.0), replace(second, together=-1.0)]) == 1
    assert best_reading([replace(first, together=-1.0), replace(second, together=-6.0)]) == 0


def test_a_refusal_is_kept_only_when_every_reading_refused():
    refusal = _reading("資料に記載がありません", 0.9, -0.1, -0.1)
    answer = _reading("月曜日 [1]", 0.05, -3.0, -2.0)  # believed less than a refusal, still an answer
    assert best_reading([refusal, answer]) == 1
    assert best_reading([refusal, _reading("資料に記載がありません", 0.5, -0.1, -0.1)]) == 0


def test_a_backend_reading_apart_is_given_more_candidates_than_one_reading_together():
    together = BackendConfig(kind="llama.cpp", model="m.gguf")
    apart = BackendConfig(kind="llama.cpp", model="m.gguf", read_passages="each")
    assert passage_policy(together, 0.5) == (0.5, None)
    assert passage_policy(apart, 0.5) == (EACH_SHARE, EACH_LIMIT)
    assert passage_policy(apart.model_copy(update={"max_passages": 2}), 0.5) == (EACH_SHARE, 2)
    assert passage_policy(None, 0.5) == (0.5, None)


def test_reading_apart_needs_a_backend_that_scores_replies(tmp_path):
    config = tmp_path / "sekisho.toml"
    config.write_text('[models.backends.vendor]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
                      'read_passages = "each"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"models\.backends\.vendor: .*needs a backend that scores replies"):
        load_settings(config)


def _qwen05b(path, base_dir=".") -> Settings:
    return Settings.model_validate({
        "base_dir": str(base_dir), "store": {"path": "kb.db"},
        "models": {"default": "q", "backends": {"q": {
            "kind": "llama.cpp", "model": str(path), "context_tokens": 2048, "options": {"n_threads": 2},
            "read_passages": "each"}}},
        "audit": {"path": "audit.db", "key_path": "signing.key"}})


def test_a_better_retrieved_passage_without_the_answer_loses_to_the_one_that_has_it(gguf_qwen05b_path):
    backend = open_backend(_qwen05b(gguf_qwen05b_path), "q")
    passages = [Passage(1, "a:0", "みなと市立図書館の案内", "みなと市立図書館は駅前にあります。蔵書は30万冊で、市内で最も大きな図書館です。"),
                Passage(2, "b:0", "図書館の利用案内", "休館日は毎週月曜日です。年末年始も休館します。")]
    # The short-answer prompt the answer bench uses: under the grounded one the 0.5B model writes
    # fragments (「[1] 2」) whatever it is given.
    readings = read_each("図書館の休館日は何曜日ですか", passages, [0.6, 0.3], backend, max_tokens=48, style="short")
    assert [r.request.passages[0].chunk_id for r in readings] == ["a:0", "b:0"]
    assert all(r.request.passages[0].n == 1 for r in readings)  # each read as [1] of its own request
    assert best_reading(readings) == 1 and "月曜日" in readings[1].completion.text


def test_differing_answers_are_weighed_with_every_passage_in_view(gguf_qwen05b_path):
    backend = open_backend(_qwen05b(gguf_qwen05b_path), "q")
    passages = [Passage(1, "north:0", "北部図書館の利用案内", "休館日は毎週火曜日です。年末年始も休館します。"),
                Passage(2, "central:0", "中央図書館の利用案内", "休館日は毎週月曜日です。年末年始も休館します。")]
    readings = read_each("中央図書館の休館日は何曜日ですか", passages, [0.5, 0.5], backend, max_tokens=48, style="short")
    # Alone, the north library's page answers for the central library (its title is all that
    # differs); both in view, the model believes the central library's day more.
    assert "火曜日" in readings[0].completion.text and "月曜日" in readings[1].completion.text
    assert readings[1].together > readings[0].together
    assert best_reading(readings) == 1
    # Readings that agree are not weighed again: nothing to choose between.
    same = read_each("中央図書館の休館日は何曜日ですか", passages[1:] * 2, [0.5, 0.5], backend, max_tokens=48,
                     style="short")
    assert [r.together for r in same] == [0.0, 0.0]


def test_request_path_reads_each_passage_and_audits_every_reading(tmp_path, gguf_qwen05b_path):
    # What is checked is the path, not the 0.5B model's prose: its answers are not held for review.
    (tmp_path / "policy.toml").write_text("[review]\nunsupported_claims = false\n", encoding="utf-8")
    settings = _qwen05b(gguf_qwen05b_path, tmp_path).model_copy(update={
        "guard": GuardConfig(policy="policy.toml")})
    question, user = "図書館の休館日は何曜日ですか", Principal("alice", Role.USER)
    with open_knowledge_base(settings) as kb:
        ingest_text(kb, path="central.md", title="中央図書館",
                    text="中央図書館の休館日は毎週月曜日です。開館時間は午前9時から午後8時までです。")
        ingest_text(kb, path="north.md", title="北部図書館",
                    text="北部図書館の休館日は毎週火曜日です。開館時間は午前10時から午後6時までです。")
        hits = kb.search(question, k=5)
        candidates = [h.chunk.id for h in hits if h.score >= EACH_SHARE * hits[0].score]
        request_path = RequestPath(settings)
        result = request_path.ask(question, principal=user, backend="q", kb=kb)
        streamed = request_path.ask_stream(question, principal=user, backend="q", kb=kb)
        text = "".join(streamed)
    assert result.status == "ok", result.message
    record = request_path.audit.get(result.audit_seq).record
    readings = record["readings"]
    assert [r["chunk_id"] for r in readings] == candidates and len(readings) == 2  # both libraries read
    [kept] = [r for r in readings if r["kept"]]
    assert kept["score"] == max(r["score"] for r in readings if "資料に記載がありません" not in r["answer"])
    # The turn is narrowed to the kept reading: one passage, [1] cites it, the audit says so.
    assert [h.chunk.id for h in result.answer.hits] == [kept["chunk_id"]] == record["chunk_ids"]
    assert result.answer.text == kept["answer"]
    assert record["prompt"][-1]["content"].count("『") == 1  # the prompt the kept answer came from: one passage
    # Streaming answers the same, released whole once the readings are compared, audited once.
    assert text == result.answer.text and streamed.result.status == "ok"
    assert request_path.audit.get(streamed.result.audit_seq).record["readings"] == readings

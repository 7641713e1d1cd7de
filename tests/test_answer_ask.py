"""`ask` end to end: a real knowledge base built from the repository's sample city documents,
real retrieval, the extractive backend and a real llama.cpp model, citations resolved to files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sekisho.answer import ask, ask_stream, build_request
from sekisho.audit import AuditLog
from sekisho.cli import app
from sekisho.config import BackendConfig, RetrievalConfig, Settings, StoreConfig, load_settings
from sekisho.ingest import ingest_paths
from sekisho.models import open_backend
from sekisho.retrieval import open_knowledge_base

CITY = Path(__file__).resolve().parents[1] / "samples" / "city"
DOCUMENTS = ["juminhyo.md", "sodai-gomi.txt", "inkan-toroku.html", "jido-teate.pdf", "foreign-residents.md"]


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    base = tmp_path_factory.mktemp("ask")
    settings = Settings(store=StoreConfig(path="kb.db"), retrieval=RetrievalConfig(embedder="use-m3"), base_dir=str(base))
    with open_knowledge_base(settings) as kb:
        report = ingest_paths(kb, [CITY / name for name in DOCUMENTS], progress=False)
    assert not report.failed and len(report.added) == len(DOCUMENTS)
    return settings


@pytest.fixture(scope="module")
def kb(settings):
    with open_knowledge_base(settings) as kb:
        yield kb


def test_extractive_answer_quotes_the_document_and_cites_its_file(settings, kb):
    backend = open_backend(settings, "extractive")
    answer = ask("コンビニ交付は何時から利用できますか", kb=kb, complete=backend.complete, k=3)
    assert "午前6時30分" in answer.text
    assert not answer.not_found and answer.faithfulness.faithful
    (citation,) = answer.citations
    assert citation.path.endswith("juminhyo.md") and citation.title == "住民票の写しの交付"
    assert "コンビニ交付" in citation.location  # the heading path of the cited chunk
    assert answer.hits[citation.n - 1].chunk.id == citation.chunk_id


def test_only_passages_near_the_best_reach_the_model(settings, kb):
    backend = open_backend(settings, "extractive")
    question = "コンビニ交付は何時から利用できますか"
    everything = ask(question, kb=kb, complete=backend.complete, k=5)
    confident = ask(question, kb=kb, complete=backend.complete, k=5, min_relative_score=0.1)
    assert len(everything.hits) == 5 and everything.hits[0] == confident.hits[0]
    assert 1 <= len(confident.hits) < 5
    assert all(h.score >= 0.1 * confident.hits[0].score for h in confident.hits)
    assert "午前6時30分" in confident.text


def test_readme_question_gets_every_fee_from_the_fee_table(settings, kb):
    # The README's quick-start question. The fee lines under "## 手数料" never repeat the words of
    # the question; the answer must still be that table, whole, not the page's introduction.
    backend = open_backend(settings, "extractive")
    answer = ask("住民票の写しの交付手数料はいくらですか？", kb=kb, complete=backend.complete, k=5)
    for fee in ("窓口（市民課・支所）：1通300円", "コンビニ交付：1通200円", "郵送請求：1通300円"):
        assert fee in answer.text
    (citation,) = answer.citations
    assert citation.path.endswith("juminhyo.md") and "手数料" in citation.location
    assert answer.faithfulness.faithful


def test_answer_from_a_pdf_quotes_whole_sentences_across_layout_line_breaks(settings, kb):
    answer = ask("児童手当の支給日はいつですか", kb=kb, complete=open_backend(settings, "extractive").complete, k=5)
    assert "前月までの2か月分を支給します。" in answer.text
    (citation,) = answer.citations
    assert citation.path.endswith("jido-teate.pdf") and citation.location == "p.2"
    assert answer.faithfulness.faithful


def test_english_question_gets_the_whole_english_sentence(settings, kb):
    # The English guide wraps its lines and writes "8:30 a.m. to 5:15 p.m.": neither a wrap nor an
    # abbreviation may end the quoted sentence.
    backend = open_backend(settings, "extractive")
    fee = ask("How much is a certificate of residence at a convenience store?", kb=kb, complete=backend.complete)
    assert "200 yen per copy at a convenience store with your My Number Card." in fee.text
    assert fee.citations[0].path.endswith("foreign-residents.md")
    hours = ask("When is City Hall open on weekdays?", kb=kb, complete=backend.complete)
    assert "from 8:30 a.m. to 5:15 p.m." in hours.text


def test_question_the_documents_do_not_answer_gets_not_found(kb, settings):
    # 予定日 (児童手当: 転出予定日) and 首都 share words or nothing with the corpus; the re-scorer's
    # probability for the best passage is what says the documents do not answer.
    def no_model(request):
        raise AssertionError("a model was asked with no passage to answer from")

    backend = open_backend(settings, "extractive")
    assert kb.scores_are_probabilities
    for question in ("火星探査機の打ち上げ予定日は？", "日本の首都はどこですか"):
        answer = ask(question, kb=kb, complete=no_model, min_score=settings.retrieval.min_score)
        assert answer.not_found and answer.text == "資料に記載がありません"
        assert answer.hits == [] and answer.citations == [] and answer.faithfulness.faithful
    ungated = ask("火星探査機の打ち上げ予定日は？", kb=kb, complete=backend.complete)
    assert ungated.hits  # without the floor the model is handed passages that merely share a word


def test_stream_variant_yields_text_then_the_same_answer(kb, settings):
    backend = open_backend(settings, "extractive")
    items = list(ask_stream("粗大ごみの手数料はいくらですか", kb=kb, stream=backend.stream, model="extractive",
                            count_tokens=backend.count_tokens, k=3))
    *pieces, answer = items
    assert "".join(pieces) == answer.text
    assert answer.text == ask("粗大ごみの手数料はいくらですか", kb=kb, complete=backend.complete, k=3).text
    assert "400円" in answer.text and answer.citations[0].path.endswith("sodai-gomi.txt")


def test_request_numbers_passages_and_carries_the_grounding_rules(kb):
    hits = kb.search("印鑑登録に必要なもの", k=3)
    request = build_request("印鑑登録に必要なものは？", hits)
    system, user = request.messages
    assert "資料に記載がありません" in system.content and "[1]" in system.content
    assert [p.n for p in request.passages] == [1, 2, 3]
    assert f"[1] 『{hits[0].document.title}』" in user.content and user.content.endswith("質問: 印鑑登録に必要なものは？")


def test_cli_ask_prints_answer_sources_and_json(settings, tmp_path, monkeypatch):
    config = tmp_path / "sekisho.toml"
    config.write_text(f'[store]\npath = "{Path(settings.base_dir, "kb.db").as_posix()}"\n'
                      '[retrieval]\nembedder = "use-m3"\n', encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["--config", str(config), "ask", "代理人が請求するには何が必要ですか", "-k", "3"])
    assert result.exit_code == 0, result.output
    assert "委任状" in result.output and "出典" in result.output and "juminhyo.md" in result.output
    result = runner.invoke(app, ["--config", str(config), "ask", "代理人が請求するには何が必要ですか", "--json"])
    assert "委任状" in result.output and "\\u" not in result.output  # Japanese as written, as `search --json`
    data = json.loads(result.output)
    assert data["citations"][0]["path"].endswith("juminhyo.md") and data["faithfulness"]["faithful"] is True
    # The CLI goes through the governed request path: the answer it printed is on the audit chain.
    audit = AuditLog.from_settings(load_settings(config))
    entry = audit.get(data["audit_seq"])
    assert entry.record["status"] == "ok" and entry.record["backend"]["used"] == "extractive"
    assert [h["chunk_id"] for h in data["passages"]] == entry.record["chunk_ids"]
    assert audit.verify().ok
    audit.close()
    result = runner.invoke(app, ["--config", str(config), "ask", "質問", "--model", "nope"])
    assert result.exit_code == 1 and "unknown backend 'nope'" in result.output


def test_llamacpp_backend_answers_from_the_retrieved_passage(kb, gguf_qwen05b_path):
    settings = Settings()
    settings.models.backends = {"qwen05b": BackendConfig(kind="llama.cpp", model=str(gguf_qwen05b_path),
                                                         context_tokens=2048, options={"n_threads": 2})}
    backend = open_backend(settings, "qwen05b")
    # One passage keeps the prompt short enough for the 0.5B model on a busy 2-core machine.
    answer = ask("コンビニ交付の手数料は1通いくらですか", kb=kb, complete=backend.complete, k=1)
    assert "200円" in answer.text
    assert answer.completion.model.endswith(".gguf") and answer.completion.completion_tokens > 0
    # Whatever the model wrote was checked sentence by sentence against the passage it was given.
    assert answer.faithfulness.sentences and answer.faithfulness.sentences[0].text in answer.text
    assert all(c.path.endswith(".md") or c.path.endswith(".html") for c in answer.citations)


def test_readme_examples_through_the_request_path_with_default_settings(tmp_path):
    # What `sekisho ask` does after the quick start: every sample document, the default embedder,
    # the default passage policy, the governed path. 転入届はいつまでに… is the README's own example;
    # the 転出届 section's deadline shares いつまでに's "までに" with it, which is no evidence.
    from sekisho.identity import Principal, Role
    from sekisho.request import RequestPath

    settings = Settings.model_validate({"base_dir": str(tmp_path), "store": {"path": "kb.db"},
                                        "audit": {"path": "audit.db", "key_path": "signing.key"}})
    with open_knowledge_base(settings) as kb:
        assert not ingest_paths(kb, [CITY], progress=False).failed
        request_path, alice = RequestPath(settings), Principal("alice", Role.USER)
        deadline = request_path.ask("転入届はいつまでに出せばよいですか？", principal=alice, backend="extractive", kb=kb).answer
        outside = request_path.ask("火星探査機の打ち上げ予定日は？", principal=alice, backend="extractive", kb=kb).answer
        # Questions that name only the document's topic: the kind of answer picks the lines.
        amount = request_path.ask("児童手当はいくらもらえますか", principal=alice, backend="extractive", kb=kb).answer
        hours = request_path.ask("図書館の開館時間は？", principal=alice, backend="extractive", kb=kb).answer
    assert "引っ越した日から14日以内に届け出てください" in deadline.text and "14日前から" not in deadline.text
    (citation,) = deadline.citations
    assert citation.path.endswith("tennyu-tenshutsu.docx") and "転入届（市外から" in citation.location
    assert outside.not_found and outside.hits == []
    # The whole amount table of the PDF, not its introduction, and not the 支給日 block after it.
    assert all(fee in amount.text for fee in ("15,000円", "10,000円", "30,000円")) and "偶数月" not in amount.text
    assert [c.path.rsplit("/", 1)[-1] for c in amount.citations] == ["jido-teate.pdf"]
    # The hours themselves, not 「開館時間外は…返却ポストに」 which only repeats the words (an EUC-JP file).
    assert "午前9時から午後8時まで" in hours.text and "午前9時から午後5時まで" in hours.text
    assert "返却ポスト" not in hours.text

"""`ask` end to end: a real knowledge base built from the repository's sample city documents,
real retrieval, the extractive backend and a real llama.cpp model, citations resolved to files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sekisho.answer import ask, ask_stream, build_request
from sekisho.cli import app
from sekisho.audit import AuditLog
from sekisho.config import BackendConfig, RetrievalConfig, Settings, StoreConfig, load_settings
from sekisho.ingest import ingest_paths
from sekisho.models import open_backend
from sekisho.retrieval import open_knowledge_base

CITY = Path(__file__).resolve().parents[1] / "samples" / "city"
DOCUMENTS = ["juminhyo.md", "sodai-gomi.txt", "inkan-toroku.html"]


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


def test_question_the_documents_do_not_answer_gets_not_found(kb, settings):
    answer = ask("火星探査機の打ち上げ予定日は？", kb=kb, complete=open_backend(settings, "extractive").complete)
    assert answer.not_found and answer.text == "資料に記載がありません"
    assert answer.citations == [] and answer.faithfulness.faithful


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
    data = json.loads(result.output)
    assert data["citations"][0]["path"].endswith("juminhyo.md") and data["faithfulness"]["faithful"] is True
    # The CLI goes through the governance Gateway: the answer it printed is on the audit chain.
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

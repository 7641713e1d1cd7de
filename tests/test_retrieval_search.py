"""Hybrid search end to end on a small Japanese + English corpus (tests/retrieval_fixtures/),
with the shipped embedder loaded offline, plus snippets and the `sekisho search` command; on the
SQLite store and on the PostgreSQL store."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from conftest import schema_url
from sekisho.cli import app
from sekisho.config import Settings, StoreConfig
from sekisho.retrieval import highlight, open_knowledge_base
from sekisho.store import Chunk, Document, Location

CORPUS = json.loads((Path(__file__).parent / "retrieval_fixtures" / "corpus.json").read_text(encoding="utf-8"))


def document_of(entry: dict) -> tuple[Document, list[Chunk]]:
    doc_id = hashlib.sha256(entry["path"].encode()).hexdigest()[:16]
    text = entry["text"]
    doc = Document(id=doc_id, path=entry["path"], title=entry["title"], content_hash="h", media_type="text/plain",
                   encoding="utf-8", text=text, tags=tuple(entry["tags"]))
    chunk = Chunk(id=f"{doc_id}:0", doc_id=doc_id, ordinal=0, text=text, norm_text=text,
                  location=Location(0, len(text)))
    return doc, [chunk]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store_config(request) -> Iterator[StoreConfig]:
    """The knowledge base in an SQLite file, then in PostgreSQL (a schema for the module)."""
    if request.param == "sqlite":
        yield StoreConfig(path="kb.db")
        return
    base = request.getfixturevalue("postgres_server")
    schema = f"r_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield StoreConfig(url=schema_url(base, schema))
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def store_env(settings: Settings) -> dict[str, str]:
    """The environment that points the CLI at the module's store."""
    if settings.store.url:  # and this "server's" search index in the module's folder, not the working one
        return {"SEKISHO_STORE__URL": settings.store.url,
                "SEKISHO_STORE__LEXICAL_INDEX": str(Path(settings.base_dir) / "sekisho.lexical")}
    return {"SEKISHO_STORE__PATH": str(Path(settings.base_dir) / "kb.db")}


@pytest.fixture(scope="module")
def settings(tmp_path_factory, store_config) -> Iterator[Settings]:
    before = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"  # the embedder must never reach for the network
    base = tmp_path_factory.mktemp("kb")
    settings = Settings(store=store_config, base_dir=str(base))
    with open_knowledge_base(settings) as kb:
        for entry in CORPUS["documents"]:
            kb.index(*document_of(entry))
    yield settings
    if before is None:
        os.environ.pop("HF_HUB_OFFLINE", None)
    else:
        os.environ["HF_HUB_OFFLINE"] = before


@pytest.fixture(scope="module")
def kb(settings):
    kb = open_knowledge_base(settings)
    yield kb
    kb.close()


@pytest.mark.parametrize("case", CORPUS["queries"], ids=[q["query"] for q in CORPUS["queries"]])
def test_paraphrased_question_finds_its_document_first(kb, case):
    hits = kb.search(case["query"], k=3, tags=())
    assert hits[0].document.path == case["expected"]


def test_hit_carries_ranks_from_both_lists(kb):
    hits = kb.search("印鑑登録証明書の手数料", k=3)
    top = hits[0]
    assert top.document.path == "ja/inkan.txt"
    assert top.rank == 1 and top.lexical_rank == 1 and top.dense_rank is not None
    assert {"印鑑", "登録", "証明書", "手数料"} <= set(top.matched_terms)
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].score >= hits[1].score >= hits[2].score


def test_modes_differ_and_lexical_needs_shared_words(kb):
    assert kb.search("xyzzy plugh", k=3, mode="lexical") == []
    dense = kb.search("xyzzy plugh", k=3, mode="dense")
    assert len(dense) == 3 and all(h.lexical_rank is None for h in dense)
    with pytest.raises(ValueError, match="unknown search mode"):
        kb.search("住民票", mode="fuzzy")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tags", "sees_hr"),
    [((), False), (("経理",), False), (("人事",), True), (("*",), True)],
)
def test_tagged_documents_only_reach_principals_with_the_tag(kb, tags, sees_hr):
    paths = [h.document.path for h in kb.search("職員の給与改定と期末手当", k=20, tags=tags)]
    assert ("ja/jinji.txt" in paths) is sees_hr
    if tags == ():
        assert not any(p in paths for p in ("ja/jinji.txt", "ja/keiri.txt"))


def test_reindex_and_delete_take_effect(settings):
    entry = {"path": "ja/temp.txt", "title": "臨時窓口", "tags": [], "text": "臨時窓口は日曜日も開庁します。"}
    with open_knowledge_base(settings) as kb:
        doc, chunks = document_of(entry)
        kb.index(doc, chunks)
        assert kb.search("日曜日の開庁", k=1, mode="lexical")[0].document.path == "ja/temp.txt"
        kb.delete(doc.id)
        assert all(h.document.path != "ja/temp.txt" for h in kb.search("日曜日の開庁", k=20))


def test_highlight_marks_matched_words_in_the_original_text(kb):
    hit = kb.search("ﾏｲﾅﾝﾊﾞｰｶｰﾄﾞで住民票", k=1)[0]  # half-width query, full-width source
    plain = highlight(hit)
    assert plain.count("**マイナンバーカード**") == 2
    assert "**住民票**" in plain
    rich = highlight(hit, style="rich")
    assert "[bold yellow]住民票[/bold yellow]" in rich


def test_highlight_windows_long_text_around_the_matches(kb):
    hit = kb.search("災害用伝言ダイヤル", k=1)[0]
    snippet = highlight(hit, width=40)
    assert snippet.startswith("…") and "**災害用伝言ダイヤル**" in snippet
    assert len(snippet.replace("**", "")) <= 42


def test_rescoring_can_be_switched_off_for_corpora_unlike_wikipedia(settings, kb):
    from sekisho.retrieval import fuse

    plain = open_knowledge_base(settings.model_copy(update={"retrieval": settings.retrieval.model_copy(
        update={"rescore": False})}))
    try:
        query = "粗大ごみの申し込み方法"
        assert kb.scores_are_probabilities and not plain.scores_are_probabilities
        hits = plain.search(query, k=3)
        found = plain.candidates(query)
        assert [h.chunk.id for h in hits] == [cid for cid, _ in fuse(found.lexical, found.dense, plain.fusion)[:3]]
    finally:
        plain.close()


def test_a_store_indexed_with_another_embedder_is_searched_with_it_until_re_embedded(settings):
    other = settings.model_copy(update={"retrieval": settings.retrieval.model_copy(update={"embedder": "use-m3"})})
    with open_knowledge_base(other) as kb:
        assert kb.reembedding and (kb.searching_with, kb.embedder.name) == ("e5-small", "e5-small")
        assert kb.search("壊れた自転車を捨てたい", k=1)[0].document.path == "ja/sodai_gomi.txt"


def test_cli_search_prints_ranked_hits(settings):
    result = CliRunner().invoke(app, ["search", "壊れた自転車を捨てたい", "-k", "2"],
                                env=store_env(settings))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("1. 粗大ごみの出し方")
    assert "ja/sodai_gomi.txt" in result.output
    # The runner-up (the earthquake notice, sharing no word with the query) is too unlikely to list.
    assert "2. " not in result.output


def test_cli_search_json_for_scripts(settings):
    result = CliRunner().invoke(app, ["search", "parking permit cost", "--json", "--mode", "lexical"],
                                env=store_env(settings))
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert hits[0]["path"] == "en/parking.txt"
    assert hits[0]["title"] == "Resident Parking Permits"
    assert hits[0]["location"] == f"0-{len(CORPUS['documents'][9]['text'])}文字目"
    assert "**permit**" in hits[0]["snippet"] and hits[0]["lexical_rank"] == 1
    assert hits[0]["text"] == CORPUS["documents"][9]["text"]  # the whole passage, not the snippet
    ja = CliRunner().invoke(app, ["search", "粗大ごみ", "--json", "-k", "1"],
                            env=store_env(settings))
    assert "粗大ごみ" in ja.output and "\\u" not in ja.output  # Japanese as written, not escaped


def test_a_search_for_what_no_document_holds_is_not_padded_with_near_zero_hits(settings, kb):
    query = "火星探査機の打ち上げ予定日"
    assert kb.search(query, k=5, min_score=0.0)  # hybrid always ranks something...
    assert kb.search(query, k=5, min_score=settings.retrieval.min_score) == []  # ...but none is likely
    found = kb.search("壊れた自転車を捨てたい", k=5, min_score=settings.retrieval.min_score)
    assert found and found[0].document.path == "ja/sodai_gomi.txt"
    result = CliRunner().invoke(app, ["search", query], env=store_env(settings))
    assert result.exit_code == 0 and result.output.startswith("該当なし (no hits)")


def test_cli_search_on_an_empty_store_says_so(tmp_path):
    result = CliRunner().invoke(app, ["search", "住民票"], env={"SEKISHO_STORE__PATH": str(tmp_path / "new.db")})
    assert result.exit_code == 0
    assert "文書がまだありません" in result.output and str(tmp_path / "new.db") in result.output


def test_cli_search_rejects_an_unknown_mode(settings):
    result = CliRunner().invoke(app, ["search", "住民票", "--mode", "fuzzy"],
                                env=store_env(settings))
    assert result.exit_code == 1
    assert "choose one of hybrid, lexical, dense" in result.output
    assert "Traceback" not in result.output


def test_a_repeated_question_is_embedded_once(settings):
    kb = open_knowledge_base(settings)
    calls: list[int] = []
    embed = kb.embedder.embed_queries
    kb.embedder.embed_queries = lambda texts: calls.append(len(texts)) or embed(texts)  # type: ignore[method-assign]
    try:
        first = kb.search("粗大ごみの申し込み方法", k=3)
        again = kb.search("粗大ごみの申し込み方法", k=3)
        other = kb.search("住民票の交付手数料", k=3)
        assert calls == [1, 1] and [h.chunk.id for h in first] == [h.chunk.id for h in again]
        assert other and other[0].chunk.id != first[0].chunk.id
    finally:
        del kb.embedder.embed_queries
        kb.close()

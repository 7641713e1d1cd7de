"""Re-embedding (#20: "a change of embedder re-embeds in the background while search keeps working
on the old vectors"): a store ingested with use-m3 and then configured for e5-small keeps answering
from its use-m3 vectors while the chunks are re-embedded; the switch is one write, after which the
store records e5-small and every handle on it searches with e5-small; a document ingested half-way
is found before and after; an interrupted run resumes; one re-embedder at a time; `sekisho reembed`
end to end; a server re-embeds in the background and survives an embedding server that is down."""

from __future__ import annotations

import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import free_port
from sekisho.cli import app as cli
from sekisho.config import load_settings
from sekisho.ingest import ingest_paths
from sekisho.retrieval import KnowledgeBase, load_embedder
from sekisho.retrieval import reembed as reembedding
from sekisho.retrieval.reembed import progress, reembed
from sekisho.store import StoreError, open_store
from server_fixtures.support import CITY

QUESTION = "住民票の写しの手数料"


class Counting:
    """An embedder that counts the passages it embeds, around a bundled one."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.dim, self.passages = inner, inner.name, inner.dim, 0

    def embed_queries(self, texts):
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts):
        self.passages += len(texts)
        return self.inner.embed_passages(texts)


class Hashed:
    """Stands in for a model on an embedding server: deterministic vectors from the text."""

    name, dim = "openai:gone-model", 8

    def _vectors(self, texts):
        rows = [np.random.default_rng(zlib.crc32(t.encode())).standard_normal(self.dim) for t in texts]
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)

    embed_queries = embed_passages = _vectors


@pytest.fixture
def city_in_use_m3(database_target):
    """The city notices ingested with use-m3; the store's target."""
    with KnowledgeBase(open_store(database_target), "use-m3") as kb:
        assert ingest_paths(kb, [CITY]).ok
    return database_target


def to_e5(target, counting: Counting | None = None) -> KnowledgeBase:
    """The store opened as a process configured for e5-small would."""
    return KnowledgeBase(open_store(target), "e5-small", embedder=(lambda: counting) if counting else None)


def stop_after(batches: int) -> tuple[threading.Event, object]:
    stop, seen = threading.Event(), []

    def report(_progress) -> None:
        seen.append(_progress)
        if len(seen) >= batches:
            stop.set()

    return stop, report


def dense_hit_is_from(kb: KnowledgeBase, embedder_name: str) -> None:
    """The best dense hit for QUESTION is the fee notice, scored by `embedder_name`'s vectors."""
    [hit] = kb.search(QUESTION, k=1, mode="dense")
    assert hit.document.path.endswith("juminhyo.md")
    embedder = load_embedder(embedder_name)
    passage = kb.passages([hit.chunk.id])[hit.chunk.id]
    expected = float(embedder.embed_queries([QUESTION])[0] @ embedder.embed_passages([passage])[0])
    assert hit.score == pytest.approx(expected, abs=1e-4)


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    monkeypatch.setattr(reembedding, "BATCH", 10)  # 38 chunks: four batches


def test_search_keeps_finding_the_right_document_from_the_old_vectors_while_re_embedding(city_in_use_m3):
    with to_e5(city_in_use_m3) as kb:
        stop, report = stop_after(2)
        assert reembed(kb, report=report, stop=stop) is False
        half = progress(kb)
        assert (half.searching_with, half.target, half.staged, half.chunks) == ("use-m3", "e5-small", 20, 38)
        assert kb.store.get_meta("embedder") == "use-m3"
        assert kb.search(QUESTION, k=1)[0].document.path.endswith("juminhyo.md")
        dense_hit_is_from(kb, "use-m3")


def test_after_the_switch_every_handle_searches_with_the_new_embedder(city_in_use_m3):
    # Another process that searched before the switch, its vector matrix loaded with use-m3's.
    other = to_e5(city_in_use_m3)
    dense_hit_is_from(other, "use-m3")
    with to_e5(city_in_use_m3) as kb:
        assert reembed(kb) is True
        assert (kb.store.get_meta("embedder"), kb.store.get_meta("embedder_dim")) == ("e5-small", "384")
        assert kb.store.staged_count() == 0 and not kb.reembedding
        dense_hit_is_from(kb, "e5-small")
    try:
        dense_hit_is_from(other, "e5-small")
        assert other.search(QUESTION, k=1)[0].document.path.endswith("juminhyo.md")
    finally:
        other.close()


def test_a_document_ingested_half_way_is_found_before_and_after_the_switch(city_in_use_m3, tmp_path):
    notice = tmp_path / "pet.md"
    notice.write_text("# ペット霊園\n\n市営ペット霊園の使用料は一区画あたり年額八千円です。申し込みは環境課へ。\n",
                      encoding="utf-8")
    with to_e5(city_in_use_m3) as kb:
        stop, report = stop_after(1)
        reembed(kb, report=report, stop=stop)
        assert ingest_paths(kb, [notice]).ok
        for mode in ("hybrid", "dense"):
            assert kb.search("ペット霊園の使用料", k=1, mode=mode)[0].document.path == str(notice)
        assert reembed(kb) is True
        assert progress(kb).chunks == 39
        for mode in ("hybrid", "dense"):
            assert kb.search("ペット霊園の使用料", k=1, mode=mode)[0].document.path == str(notice)


def test_an_interrupted_run_resumes_where_it_stopped(city_in_use_m3):
    first = Counting(load_embedder("e5-small"))
    with to_e5(city_in_use_m3, first) as kb:
        stop, report = stop_after(2)
        reembed(kb, report=report, stop=stop)
    again = Counting(load_embedder("e5-small"))  # a new process: only the rest is embedded
    with to_e5(city_in_use_m3, again) as kb:
        assert progress(kb).staged == 20
        assert reembed(kb) is True
    assert (first.passages, again.passages) == (20, 18)


def test_two_cannot_re_embed_one_store_at_once(city_in_use_m3):
    holding, release = threading.Event(), threading.Event()

    def report(_progress) -> None:
        holding.set()
        release.wait(60)

    first = to_e5(city_in_use_m3)
    worker = threading.Thread(target=reembed, args=(first,), kwargs={"report": report})
    worker.start()
    try:
        assert holding.wait(60)
        with to_e5(city_in_use_m3) as second, pytest.raises(StoreError, match="is re-embedding this store"):
            reembed(second)
    finally:
        release.set()
        worker.join(60)
    with to_e5(city_in_use_m3) as second:
        assert reembed(second) is True and second.searching_with == "e5-small"
    first.close()


def sekisho(folder: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(folder / "sekisho.toml"), *args])


def configure(folder: Path, embedder: str) -> None:
    (folder / "sekisho.toml").write_text(f'[store]\npath = "kb.db"\n[retrieval]\nembedder = "{embedder}"\n'
                                         '[audit]\npath = "audit.db"\nkey_path = "signing.key"\n', encoding="utf-8")


def test_the_reembed_command_switches_the_store_and_says_how_far_it_is(tmp_path):
    configure(tmp_path, "use-m3")
    assert sekisho(tmp_path, "ingest", str(CITY)).exit_code == 0
    configure(tmp_path, "e5-small")
    status = sekisho(tmp_path, "reembed", "--status")
    assert status.exit_code == 0, status.output
    assert "re-embedding from 'use-m3' to 'e5-small': 0 of 38 chunks staged" in status.output
    assert "juminhyo.md" in sekisho(tmp_path, "search", QUESTION, "-k", "1").output
    done = sekisho(tmp_path, "reembed")
    assert done.exit_code == 0, done.output
    assert "the store's 38 chunks are embedded by 'e5-small'" in done.output
    assert "embedded by 'e5-small'" in sekisho(tmp_path, "reembed", "--status").output
    assert "juminhyo.md" in sekisho(tmp_path, "search", QUESTION, "-k", "1").output
    assert sekisho(tmp_path, "reembed").exit_code == 0  # nothing left to do


def test_a_store_whose_embedding_server_is_gone_says_what_to_do_and_can_still_be_re_embedded(tmp_path):
    with KnowledgeBase(open_store(tmp_path / "kb.db"), Hashed.name, embedder=Hashed) as kb:
        assert ingest_paths(kb, [CITY]).ok
    configure(tmp_path, "use-m3")
    searched = sekisho(tmp_path, "search", QUESTION)
    assert searched.exit_code == 1 and "Traceback" not in searched.output
    line = " ".join(searched.output.split())
    assert "'openai:gone-model'" in line and "'use-m3' is configured" in line and "sekisho reembed" in line
    assert sekisho(tmp_path, "reembed").exit_code == 0
    found = sekisho(tmp_path, "search", QUESTION, "-k", "1")
    assert found.exit_code == 0 and "juminhyo.md" in found.output


def wait_for(condition, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_server_re_embeds_in_the_background_and_outlives_an_embedding_server_that_is_down(tmp_path, monkeypatch,
                                                                                            caplog):
    from sekisho.server.runtime import ReembedWorker, Runtime

    configure(tmp_path, "use-m3")
    assert sekisho(tmp_path, "ingest", str(CITY)).exit_code == 0
    config = tmp_path / "sekisho.toml"
    config.write_text(config.read_text().replace('embedder = "use-m3"', f'embedder = "openai"\n'
                      f'[retrieval.embedding_server]\nbase_url = "http://127.0.0.1:{free_port()}/v1"\n'
                      'model = "bge-m3"\ndim = 1024\n'), encoding="utf-8")
    monkeypatch.setattr(ReembedWorker, "RETRY_S", 0.2)
    down = Runtime(load_settings(config))
    try:
        down.reembed.start()
        wait_for(lambda: sum("re-embedding paused" in r.getMessage() for r in caplog.records) >= 2)
        assert "the embedding server cannot be reached" in caplog.text
        assert down.kb().searching_with == "use-m3"
        assert down.kb().search(QUESTION, k=1)[0].document.path.endswith("juminhyo.md")
    finally:
        assert down.reembed.stop(30)
        down.close()
    configure(tmp_path, "e5-small")
    runtime = Runtime(load_settings(config))
    try:
        runtime.reembed.start()
        wait_for(lambda: not runtime.kb().reembedding)
        assert runtime.kb().store.get_meta("embedder") == "e5-small"
        dense_hit_is_from(runtime.kb(), "e5-small")
    finally:
        runtime.close()


def one_chunk(text: str, doc_id: str = "a"):
    from sekisho.store import Chunk, Document, Location

    document = Document(id=doc_id, path=f"{doc_id}.txt", title="t", content_hash=text, media_type="text/plain",
                        encoding="utf-8", text=text)
    return document, [Chunk(id=f"{doc_id}:0", doc_id=doc_id, ordinal=0, text=text, norm_text=text,
                            location=Location(0, len(text)))]


def test_a_chunk_rewritten_while_its_batch_was_embedded_is_embedded_again_from_its_new_text(database_target):
    store = open_store(database_target)
    try:
        store.replace_document(*one_chunk("古い本文"), ["古い 本文"], np.ones((1, 4), dtype=np.float32), embedder="old")
        store.begin_staging("new")
        batch = store.unstaged_chunks(10)
        # Rewritten meanwhile (SQLite gives the new chunk the same row number).
        store.replace_document(*one_chunk("新しい本文"), ["新しい 本文"], np.ones((1, 4), dtype=np.float32), embedder="old")
        assert store.stage_vectors("new", batch, np.ones((1, 3), dtype=np.float32)) == 0
        assert not store.switch_to_staged("new", 3)
        again = store.unstaged_chunks(10)
        assert [c.text for c in again.chunks] == ["新しい本文"]
        assert store.stage_vectors("new", again, np.ones((1, 3), dtype=np.float32)) == 1
        assert store.switch_to_staged("new", 3)
        assert (store.get_meta("embedder"), store.get_meta("embedder_dim")) == ("new", "3")
        assert store.vector_search(np.ones(3, dtype=np.float32), 1)[0][0] == "a:0"
    finally:
        store.close()


def test_vectors_made_by_the_old_embedder_are_refused_once_the_store_switched(database_target):
    from sekisho.store import EmbedderChanged

    store = open_store(database_target)
    try:
        store.replace_document(*one_chunk("本文"), ["本文"], np.ones((1, 4), dtype=np.float32), embedder="old")
        store.begin_staging("new")
        store.stage_vectors("new", store.unstaged_chunks(10), np.ones((1, 3), dtype=np.float32))
        assert store.switch_to_staged("new", 3)
        with pytest.raises(EmbedderChanged, match="the store's vectors are 'new''s, these were made by 'old'"):
            store.replace_document(*one_chunk("別の本文", "b"), ["別の 本文"], np.ones((1, 4), dtype=np.float32),
                                   embedder="old")
        assert store.document_by_id("b") is None and store.get_meta("embedder") == "new"
    finally:
        store.close()


def test_check_notes_a_re_embedding_under_way_as_pending_not_damage(database_target, tmp_path):
    from sekisho.check import check

    store = open_store(database_target)
    try:
        store.replace_document(*one_chunk("本文"), ["本文"], np.ones((1, 4), dtype=np.float32), embedder="old")
        store.begin_staging("new")
    finally:
        store.close()
    where = f'url = "{database_target}"' if str(database_target).startswith("postgresql") else \
        f'path = "{database_target}"'
    (tmp_path / "sekisho.toml").write_text(f"[store]\n{where}\n", encoding="utf-8")
    report = check(load_settings(tmp_path / "sekisho.toml"))
    assert not [p for p in report.problems if "store" in p], report.problems
    assert any("re-embedding from 'old' to 'new' under way: 0 of 1 chunks staged" in n for n in report.notes)


def test_a_query_embedded_just_before_the_switch_is_embedded_again_for_the_new_vectors(city_in_use_m3):
    """Another process switches the store after this one embedded the query with use-m3 (512
    dimensions) and before it searched the vectors, which are e5-small's (384) by then."""
    searching, switcher = to_e5(city_in_use_m3), to_e5(city_in_use_m3)
    assert searching.searching_with == "use-m3"
    search_vectors = searching.store.vector_search

    def switched_first(vector, k, tags=None):
        if switcher.store.get_meta("embedder") == "use-m3":
            reembed(switcher)
        return search_vectors(vector, k, tags)

    searching.store.vector_search = switched_first
    try:
        hits = searching.search(QUESTION, k=1, mode="dense")
        assert hits[0].document.path.endswith("juminhyo.md") and searching.searching_with == "e5-small"
    finally:
        searching.close()
        switcher.close()


def test_an_emptied_store_takes_a_new_embedder_without_re_embedding(database_target):
    """Every document deleted, the next ingest with another embedder (another dimension) starts
    the store afresh on it: nothing is left to re-embed."""
    with KnowledgeBase(open_store(database_target), "use-m3") as kb:
        assert ingest_paths(kb, [CITY / "juminhyo.md"]).ok
        for document in kb.store.documents():
            kb.delete(document.id)
    with to_e5(database_target) as kb:
        assert not kb.reembedding
        assert ingest_paths(kb, [CITY / "juminhyo.md"]).ok
        assert kb.store.get_meta("embedder") == "e5-small"
        assert kb.search(QUESTION, k=1, mode="dense")[0].document.path.endswith("juminhyo.md")

"""The stores: schema and migrations, concurrency, atomic replace, tag filtering. The tests of the
Store protocol run on the SQLite store (tantivy answering, and FTS5 alone) and on the PostgreSQL
store; those of SQLite's own machinery (WAL, the vector matrix, legacy files) on SQLite."""

from __future__ import annotations

import sqlite3
import threading
import zlib

import numpy as np
import pytest

from sekisho.db import MigrationError
from sekisho.store import Chunk, Document, Location, StoreError, changelog, open_store
from sekisho.store.postgres import PostgresStore
from sekisho.store.sqlite import SQLiteStore
from sekisho.store.sqlite import store as sqlite_module
from sekisho.store.sqlite.schema import STORE_MIGRATIONS
from sekisho.store.sqlite.vectors import VectorIndex, dense_scores

DIM = 8


def make_doc(doc_id: str, texts: list[str], *, tags: tuple[str, ...] = (), path: str | None = None,
             title: str = "title") -> tuple[Document, list[Chunk], list[str], np.ndarray]:
    full = "".join(texts)
    doc = Document(id=doc_id, path=path or f"{doc_id}.txt", title=title, content_hash="h" + doc_id,
                   media_type="text/plain", encoding="utf-8", text=full, tags=tags, ingested_at=1.0)
    chunks, pos = [], 0
    for i, t in enumerate(texts):
        chunks.append(Chunk(id=f"{doc_id}:{i}", doc_id=doc_id, ordinal=i, text=t, norm_text=t,
                            location=Location(pos, pos + len(t), page=1, heading=("章", "節"))))
        pos += len(t)
    rng = np.random.default_rng(zlib.crc32(doc_id.encode()))
    vectors = rng.normal(size=(len(texts), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return doc, chunks, texts, vectors  # lexical text = the chunk text: already space-separated words


def _opened(kind: str, tmp_path, request):
    if kind == "postgresql":
        return PostgresStore(request.getfixturevalue("postgres_url"))
    if kind == "postgresql+tantivy":  # PostgreSQL answering until the index catches up in the background
        return PostgresStore(request.getfixturevalue("postgres_url"), tmp_path / "sekisho.lexical")
    return SQLiteStore(tmp_path / "kb.db", lexical_index=kind == "tantivy")


def target_of(store) -> str:
    """What opens the same store again (another process, another server)."""
    return store.db.url if store.db.dialect == "postgresql" else str(store.path)


@pytest.fixture(params=["tantivy", "fts5", "postgresql", "postgresql+tantivy"])
def store(tmp_path, request):
    """Protocol tests: SQLite with the tantivy index answering, SQLite with FTS5 alone, PostgreSQL
    alone, PostgreSQL with a server's tantivy index."""
    s = _opened(request.param, tmp_path, request)
    yield s
    s.close()


@pytest.fixture(params=["tantivy", "fts5"])
def sqlite_store(tmp_path, request):
    s = _opened(request.param, tmp_path, request)
    yield s
    s.close()


@pytest.fixture(params=["fts5", "postgresql"])
def fts5_store(tmp_path, request):
    """The in-database BM25 engines, which walk only the rarer terms: FTS5 and PostgreSQL's."""
    s = _opened(request.param, tmp_path, request)
    yield s
    s.close()


def test_fresh_store_is_wal_with_every_migration_recorded(sqlite_store, tmp_path):
    assert sqlite_store.applied_migrations()[:4] == ["store.documents_chunks_fts_vectors", "store.fts_vocabulary",
                                              "store.chunk_change_log", "store.document_recipe"]
    raw = sqlite3.connect(tmp_path / "kb.db")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_round_trip_keeps_every_field(store):
    doc, chunks, lex, vecs = make_doc("d1", ["alpha beta", "gamma delta"], tags=("人事", "経理"), title="給与")
    store.replace_document(doc, chunks, lex, vecs)
    store.close()
    reopened = open_store(target_of(store))
    assert reopened.document_by_path("d1.txt") == doc
    assert reopened.document_by_id("d1") == doc
    assert reopened.chunks_by_id(["d1:1", "d1:0", "missing"]) == [chunks[1], chunks[0]]
    stored = reopened.stored_chunks("d1")
    assert stored.chunks == chunks and stored.lexical_texts == lex
    np.testing.assert_allclose(stored.vectors, vecs, rtol=1e-6)
    reopened.close()


def test_forward_migration_upgrades_existing_data(tmp_path, monkeypatch):
    path = tmp_path / "kb.db"
    s = open_store(path)
    doc, chunks, lex, vecs = make_doc("d1", ["alpha"])
    s.replace_document(doc, chunks, lex, vecs)
    s.close()
    newer = STORE_MIGRATIONS.first(len(STORE_MIGRATIONS.names))
    newer.sql("added_table", "CREATE TABLE added (x INTEGER)")
    monkeypatch.setattr(sqlite_module, "STORE_MIGRATIONS", newer)
    s = open_store(path)
    assert s.applied_migrations()[-1] == "store.added_table"
    assert s.document_by_id("d1") == doc
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT count(*) FROM added").fetchone()[0] == 0
    raw.close()
    s.close()


def test_store_from_a_newer_sekisho_is_refused(tmp_path):
    path = tmp_path / "kb.db"
    open_store(path).close()
    raw = sqlite3.connect(path)
    raw.execute("INSERT INTO _migrations(name, applied_at) VALUES ('store.from_the_future', 0)")
    raw.commit()
    raw.close()
    with pytest.raises(MigrationError, match="newer sekisho.*from_the_future"):
        open_store(path)


def test_older_sekisho_refuses_a_store_with_named_migrations(tmp_path):
    # sekisho up to 0.1.0 read schema_version and refused anything above its 4 numbered migrations.
    path = tmp_path / "kb.db"
    open_store(path).close()
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT version FROM schema_version").fetchone()[0] > 4
    raw.close()


def test_store_from_before_named_migrations_keeps_its_data(tmp_path):
    # A store written with numbered migrations (schema_version 3: no recipe column yet).
    path = tmp_path / "kb.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    raw.execute("INSERT INTO schema_version VALUES (3)")
    for migration in STORE_MIGRATIONS.first(3)._steps:  # noqa: SLF001 - the old schema, as it was built
        migration.run(raw)
    raw.execute("INSERT INTO documents(id, path, title, content_hash, media_type, text) "
                "VALUES ('d1', 'd1.txt', 'old', 'h', 'text/plain', 'body')")
    raw.commit()
    raw.close()
    s = open_store(path)
    assert "store.document_recipe" in s.applied_migrations()
    assert s.document_by_id("d1").title == "old" and s.document_by_id("d1").recipe == ""
    s.close()


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="notes.db"):
        open_store(path)


def test_replace_drops_old_chunks_from_both_indexes(store):
    store.replace_document(*make_doc("d1", ["apple banana", "cherry"]))
    store.replace_document(*make_doc("d1", ["durian"]))
    assert store.lexical_search(["apple"], 5) == []
    assert [cid for cid, _ in store.lexical_search(["durian"], 5)] == ["d1:0"]
    assert store.chunk_count() == 1
    assert [cid for cid, _ in store.vector_search(np.ones(DIM), 5)] == ["d1:0"]


def test_failure_mid_replace_leaves_old_document_intact(store):
    old = make_doc("d1", ["apple banana"])
    store.replace_document(*old)
    doc, chunks, lex, vecs = make_doc("d1", ["cherry", "durian"])
    duplicate = [chunks[0], chunks[0]]  # the second insert violates the unique chunk id
    with pytest.raises(store.db.errors):
        store.replace_document(doc, duplicate, lex, vecs)
    assert store.document_by_id("d1") == old[0]
    assert store.chunks_by_id(["d1:0"]) == old[1]
    assert [cid for cid, _ in store.lexical_search(["apple"], 5)] == ["d1:0"]
    assert store.lexical_search(["cherry"], 5) == []
    assert len(store.vector_search(np.ones(DIM), 5)) == 1


def test_mismatched_inputs_are_rejected_before_writing(store):
    doc, chunks, lex, vecs = make_doc("d1", ["apple", "banana"])
    with pytest.raises(StoreError, match="2 chunks but 2 lexical texts and 1 vectors"):
        store.replace_document(doc, chunks, lex, vecs[:1])
    assert store.documents() == []


def test_same_path_under_new_id_replaces_the_old_document(store):
    store.replace_document(*make_doc("old-id", ["apple"], path="a.txt"))
    store.replace_document(*make_doc("new-id", ["banana"], path="a.txt"))
    assert [d.id for d in store.documents()] == ["new-id"]
    assert store.lexical_search(["apple"], 5) == []


def test_delete_removes_document_everywhere(store):
    store.replace_document(*make_doc("d1", ["apple"]))
    store.replace_document(*make_doc("d2", ["apple pie"]))
    store.delete_document("d1")
    assert store.document_by_id("d1") is None
    assert [cid for cid, _ in store.lexical_search(["apple"], 5)] == ["d2:0"]
    assert [cid for cid, _ in store.vector_search(np.ones(DIM), 5)] == ["d2:0"]


@pytest.mark.parametrize(
    ("tags", "visible"),
    [
        (None, {"open", "hr", "acct", "both"}),
        (("*",), {"open", "hr", "acct", "both"}),
        ((), {"open"}),
        (("人事",), {"open", "hr", "both"}),
        (("経理", "other"), {"open", "acct", "both"}),
        (("other",), {"open"}),
    ],
)
def test_tag_filter_applies_to_both_searches(store, tags, visible):
    store.replace_document(*make_doc("open", ["shared word"]))
    store.replace_document(*make_doc("hr", ["shared word"], tags=("人事",)))
    store.replace_document(*make_doc("acct", ["shared word"], tags=("経理",)))
    store.replace_document(*make_doc("both", ["shared word"], tags=("人事", "経理")))
    lexical = {cid.split(":")[0] for cid, _ in store.lexical_search(["shared"], 10, tags)}
    dense = {cid.split(":")[0] for cid, _ in store.vector_search(np.ones(DIM), 10, tags)}
    assert lexical == visible
    assert dense == visible


def test_vector_search_orders_by_cosine(store):
    doc, chunks, lex, _ = make_doc("d1", ["a", "b", "c"])
    vecs = np.eye(3, DIM, dtype=np.float32)
    store.replace_document(doc, chunks, lex, vecs)
    query = np.array([0.1, 0.9, 0.4, 0, 0, 0, 0, 0], dtype=np.float32)
    ranked = store.vector_search(query, 3)
    assert [cid for cid, _ in ranked] == ["d1:1", "d1:2", "d1:0"]
    assert ranked[0][1] == pytest.approx(0.9, abs=1e-2)


@pytest.mark.parametrize("rows", [7, 40_000])  # one einsum inline; row slices on the product threads
def test_dense_scores_equal_the_matrix_product(rows):
    rng = np.random.default_rng(rows)
    matrix = rng.standard_normal((rows, 16)).astype(np.float32)
    query = rng.standard_normal(16).astype(np.float32)
    expected = matrix.astype(np.float64) @ query.astype(np.float64)
    np.testing.assert_allclose(dense_scores(matrix, query), expected, rtol=1e-4, atol=1e-4)
    out = np.full(rows + 3, np.nan, dtype=np.float32)
    dense_scores(matrix, query, out=out[2:rows + 2])  # writes into a slice of a larger array
    np.testing.assert_allclose(out[2:rows + 2], expected, rtol=1e-4, atol=1e-4)
    assert np.isnan(out[:2]).all() and np.isnan(out[rows + 2:]).all()


def test_vector_search_sees_writes_from_another_store_instance(store):
    store.replace_document(*make_doc("d1", ["a"]))
    assert len(store.vector_search(np.ones(DIM), 5)) == 1  # loads the matrix
    other = open_store(target_of(store))
    other.replace_document(*make_doc("d2", ["b"]))
    other.close()
    assert len(store.vector_search(np.ones(DIM), 5)) == 2


def assert_ranks_like_a_fresh_load(store, path, query):
    fresh = SQLiteStore(path, lexical_index=False)
    got, want = store.vector_search(query, 30), fresh.vector_search(query, 30)
    fresh.close()
    assert [cid for cid, _ in got] == [cid for cid, _ in want]
    assert [score for _, score in got] == pytest.approx([score for _, score in want], abs=1e-5)


def test_vector_matrix_follows_writes_without_reloading(sqlite_store, tmp_path, monkeypatch):
    store = sqlite_store
    store.replace_document(*make_doc("d1", ["a", "b"]))
    store.replace_document(*make_doc("d2", ["c"], tags=("人事",)))
    store.vector_search(np.ones(DIM), 1)  # the one full load
    loads: list[int] = []
    original = VectorIndex._load_vectors
    monkeypatch.setattr(VectorIndex, "_load_vectors",
                        lambda self: (self is store.vectors and loads.append(1)) or original(self))
    other = open_store(tmp_path / "kb.db")  # writes from another instance are replayed too
    other.replace_document(*make_doc("d1", ["a2", "b2", "c2"]))  # replaced: 2 rows out, 3 in
    other.delete_document("d2")
    other.replace_document(*make_doc("d3", ["d"], tags=("経理",)))
    other.close()
    store.replace_document(*make_doc("d4", ["e"]))
    rng = np.random.default_rng(3)
    for _ in range(5):
        assert_ranks_like_a_fresh_load(store, tmp_path / "kb.db", rng.normal(size=DIM).astype(np.float32))
    assert loads == []
    assert sorted(cid for cid, _ in store.vector_search(np.ones(DIM), 10)) == ["d1:0", "d1:1", "d1:2", "d3:0", "d4:0"]
    # Tag filters see the replayed rows' documents.
    assert {cid for cid, _ in store.vector_search(np.ones(DIM), 10, ())} == {"d1:0", "d1:1", "d1:2", "d4:0"}
    assert {cid for cid, _ in store.vector_search(np.ones(DIM), 10, ("経理",))} == {"d1:0", "d1:1", "d1:2", "d3:0", "d4:0"}


def test_replayed_blocks_and_their_compaction_rank_like_a_fresh_load(sqlite_store, tmp_path):
    store = sqlite_store
    store.replace_document(*make_doc("big", [f"w{i}" for i in range(20)]))
    store.vector_search(np.ones(DIM), 1)
    query = np.random.default_rng(5).normal(size=DIM).astype(np.float32)
    for i in range(5):  # appended as blocks beside the first: nothing copied
        store.replace_document(*make_doc(f"s{i}", ["x"]))
        assert_ranks_like_a_fresh_load(store, tmp_path / "kb.db", query)
    assert len(store.vectors._cache.blocks) == 6  # noqa: SLF001 - the path under test
    store.delete_document("big")  # 20 of 25 rows dead: compacted into one block
    assert_ranks_like_a_fresh_load(store, tmp_path / "kb.db", query)
    assert len(store.vectors._cache.blocks) == 1 and store.vectors._cache.rows == 5  # noqa: SLF001


def test_vector_matrix_reloads_when_the_change_log_is_too_short(sqlite_store, monkeypatch):
    store = sqlite_store
    monkeypatch.setattr(changelog, "CHANGE_LOG_GENERATIONS", 1)
    store.replace_document(*make_doc("d1", ["a"]))
    store.vector_search(np.ones(DIM), 1)
    for i in range(2, 5):
        store.replace_document(*make_doc(f"d{i}", ["b"]))
    store.delete_document("d1")
    assert sorted(cid for cid, _ in store.vector_search(np.ones(DIM), 10)) == ["d2:0", "d3:0", "d4:0"]


def test_readers_are_not_blocked_by_an_open_write(sqlite_store, tmp_path):
    store = sqlite_store
    store.replace_document(*make_doc("d1", ["apple"]))
    writer = sqlite3.connect(tmp_path / "kb.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM documents")  # uncommitted
    seen: list[list[str]] = []
    reader = threading.Thread(target=lambda: seen.append([d.id for d in store.documents()]))
    reader.start()
    reader.join(timeout=10)
    writer.execute("ROLLBACK")
    writer.close()
    assert seen == [["d1"]]


def test_concurrent_writers_from_threads_all_land(store):
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            store.replace_document(*make_doc(f"d{i}", [f"word{i}"]))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.documents()) == 8


def test_meta_values_persist(store):
    store.set_meta("embedder", "e5-small")
    store.set_meta("embedder", "use-m3")
    store.close()
    s = open_store(target_of(store))
    assert s.get_meta("embedder") == "use-m3"
    assert s.get_meta("missing") is None
    s.close()


def test_reindex_lexical_rewrites_every_chunk_and_records_the_scheme(store):
    store.replace_document(*make_doc("d1", ["apple banana", "cherry"], title="果物"))
    store.replace_document(*make_doc("d2", ["durian"]))
    generation = store.generation()
    seen = []

    def lexical_of(document, chunks):
        seen.append((document.title, [c.id for c in chunks]))
        return [f"{c.text} new{document.id}" for c in chunks]

    assert store.reindex_lexical(lexical_of, "scheme-2") == 3
    assert sorted(seen) == [("title", ["d2:0"]), ("果物", ["d1:0", "d1:1"])]
    assert store.get_meta("lexical_scheme") == "scheme-2"
    assert store.generation() > generation
    assert sorted(cid for cid, _ in store.lexical_search(["newd1"], 5)) == ["d1:0", "d1:1"]
    assert [cid for cid, _ in store.lexical_search(["durian"], 5)] == ["d2:0"]


def test_reindex_lexical_failing_half_way_changes_nothing(store):
    store.replace_document(*make_doc("d1", ["apple"]))
    store.replace_document(*make_doc("d2", ["banana"]))

    def lexical_of(document, chunks):
        if document.id == "d2":
            raise RuntimeError("analyser crashed")
        return ["rewritten" for _ in chunks]

    with pytest.raises(RuntimeError):
        store.reindex_lexical(lexical_of, "scheme-2")
    assert store.get_meta("lexical_scheme") is None
    assert store.lexical_search(["rewritten"], 5) == []
    assert [cid for cid, _ in store.lexical_search(["apple"], 5)] == ["d1:0"]


def test_document_titles_without_text(store):
    store.replace_document(*make_doc("d1", ["apple"], title="りんご"))
    assert store.document_titles(["d1", "missing", "d1"]) == {"d1": "りんご"}
    assert store.document_titles([]) == {}


def test_rare_terms_are_searched_first_within_the_postings_budget(fts5_store):
    store = fts5_store
    # 20 chunks share "common"; "rare" is in one and "medium" in four.
    texts = [f"common filler{i}" + (" rare" if i == 7 else "") + (" medium" if i % 5 == 0 else "")
             for i in range(20)]
    store.replace_document(*make_doc("d1", texts))
    assert len(store.lexical_search(["common", "rare"], 30)) == 20  # under the budget: every term
    store.lexical.postings_budget = 5  # rare (1) + medium (4) fit; common (20) would not
    assert [cid for cid, _ in store.lexical_search(["common", "rare"], 30)] == ["d1:7"]
    assert {cid for cid, _ in store.lexical_search(["common", "medium"], 30)} == {f"d1:{i}" for i in (0, 5, 10, 15)}
    # A query made only of common words still finds its chunks: the rarest term is always searched.
    assert len(store.lexical_search(["common"], 30)) == 20


def test_term_counts_follow_writes(fts5_store):
    store = fts5_store
    store.lexical.postings_budget = 3
    store.replace_document(*make_doc("d1", ["apple pear", "fig plum"]))
    assert {cid for cid, _ in store.lexical_search(["apple", "fig"], 10)} == {"d1:0", "d1:1"}
    # fig is now in 6 chunks: with fresh counts it no longer fits the budget beside apple.
    store.replace_document(*make_doc("d2", ["fig"] * 5))
    assert [cid for cid, _ in store.lexical_search(["apple", "fig"], 10)] == ["d1:0"]


def test_lookups_by_many_ids_cross_sqlite_parameter_batches(store):
    # More ids than one IN list binds (500 per statement): every one is found, in the order asked.
    texts = [f"word{i} common" for i in range(1203)]
    store.replace_document(*make_doc("big", texts))
    ids = [f"big:{i}" for i in reversed(range(1203))] + ["big:missing"]
    assert [c.id for c in store.chunks_by_id(ids)] == ids[:-1]
    assert store.lexical_texts(ids) == {f"big:{i}": texts[i] for i in range(1203)}


def test_tags_of_many_documents_written_at_once_reach_the_index(store):
    store.lexical_search(["common"], 1)  # the index is current before the writes it must replay
    for i in range(601):
        store.replace_document(*make_doc(f"hr{i}", [f"common item{i}"], tags=("人事",)))
    store.replace_document(*make_doc("open", ["common open"]))
    assert {cid for cid, _ in store.lexical_search(["common"], 1000, ())} == {"open:0"}
    assert len(store.lexical_search(["common"], 1000, ("人事",))) == 602

"""The tantivy index beside the SQLite file: caught up by the next search after writes (from any
process), rebuilt when it cannot be trusted, and never in the way: when it is busy, stale or
unusable, FTS5 answers and the results are the same chunks."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from sekisho.store import changelog
from sekisho.store.sqlite import SQLiteStore
from sekisho.store.tantivy_index import IndexWriter
from test_store_sqlite import make_doc

QUERIES = (["apple"], ["fig", "kiwi"], ["plum", "apple", "pear"], ["missing"], ["APPLE"])


def ids(store: SQLiteStore, terms: list[str], tags=None) -> set[str]:
    return {cid for cid, _ in store.lexical_search(terms, 50, tags)}


@pytest.fixture
def path(tmp_path):
    return tmp_path / "kb.db"


@pytest.fixture
def clears(monkeypatch) -> list[int]:
    """Counts full rebuilds (an IndexWriter clearing the index) from here on."""
    calls: list[int] = []
    original = IndexWriter.clear

    def counting_clear(self):
        calls.append(1)
        original(self)

    monkeypatch.setattr(IndexWriter, "clear", counting_clear)
    return calls


def test_the_index_follows_every_write_and_agrees_with_fts5(path):
    store = SQLiteStore(path)
    fts5 = SQLiteStore(path, lexical_index=False)
    writes = [
        lambda: store.replace_document(*make_doc("d1", ["apple pear", "fig plum"])),
        lambda: store.replace_document(*make_doc("d2", ["apple kiwi", "kiwi"], tags=("人事",))),
        lambda: store.replace_document(*make_doc("d1", ["plum only"])),
        lambda: store.replace_document(*make_doc("d1", ["plum apple"], tags=("経理",))),  # re-tagged
        lambda: store.delete_document("d2"),
    ]
    for write in writes:
        write()
        assert ids(store, ["apple"]) == ids(fts5, ["apple"])  # the first search catches up
        assert store.lexical_index_current()
        for terms in QUERIES:
            assert ids(store, terms) == ids(fts5, terms), terms
            assert ids(store, terms, ()) == ids(fts5, terms, ()), terms
            assert ids(store, terms, ("経理",)) == ids(fts5, terms, ("経理",)), terms
    store.close()
    fts5.close()


def test_tag_visibility_is_enforced_by_the_index(path):
    store = SQLiteStore(path)
    store.replace_document(*make_doc("open", ["shared word"]))
    store.replace_document(*make_doc("hr", ["shared word"], tags=("人事",)))
    store.replace_document(*make_doc("both", ["shared word"], tags=("人事", "経理")))
    store.lexical_search(["shared"], 1)
    assert store.lexical_index_current()
    assert ids(store, ["shared"], ()) == {"open:0"}
    assert ids(store, ["shared"], ("経理",)) == {"open:0", "both:0"}
    assert ids(store, ["shared"], ("人事",)) == {"open:0", "hr:0", "both:0"}
    assert ids(store, ["shared"], ("*",)) == ids(store, ["shared"]) == {"open:0", "hr:0", "both:0"}
    # A tag that looks like the index's own marker for untagged chunks grants nothing more.
    assert ids(store, ["shared"], ("untagged", "=人事")) == {"open:0"}
    store.close()


def test_query_terms_are_literal_for_the_index(path):
    store = SQLiteStore(path)
    store.replace_document(*make_doc("d", ['say" AND OR NEAR (x) a*b field:value']))
    store.lexical_search(["say"], 1)
    assert store.lexical_index_current()
    assert ids(store, ["and"]) == {"d:0"}
    assert ids(store, ['say"']) == {"d:0"}
    assert ids(store, ["field:value"]) == {"d:0"}
    assert ids(store, ["a*"]) == set()
    assert ids(store, ["*"]) == set()
    store.close()


def test_writes_made_without_the_index_are_replayed_on_the_next_search(path, clears):
    store = SQLiteStore(path)
    store.replace_document(*make_doc("d1", ["apple pear"]))
    store.lexical_search(["apple"], 1)
    clears.clear()  # that search built the index
    other = SQLiteStore(path, lexical_index=False)  # e.g. an older sekisho, or a read-only index
    other.replace_document(*make_doc("d2", ["apple kiwi"]))
    other.delete_document("d1")
    assert not store.lexical_index_current()
    assert ids(store, ["apple"]) == {"d2:0"}
    assert store.lexical_index_current()
    assert clears == []  # caught up from the change log, not rebuilt
    other.close()
    store.close()


def test_an_index_older_than_the_change_log_is_rebuilt(path, clears, monkeypatch):
    monkeypatch.setattr(changelog, "CHANGE_LOG_GENERATIONS", 2)
    store = SQLiteStore(path)
    store.replace_document(*make_doc("d0", ["apple"]))
    store.lexical_search(["apple"], 1)
    clears.clear()  # that search built the index
    other = SQLiteStore(path, lexical_index=False)
    for i in range(1, 6):
        other.replace_document(*make_doc(f"d{i}", [f"apple word{i}"]))
    other.delete_document("d0")
    assert ids(store, ["apple"]) == {f"d{i}:0" for i in range(1, 6)}
    assert ids(store, ["word3"]) == {"d3:0"}
    assert clears == [1]
    assert store.lexical_index_current()
    other.close()
    store.close()


HOLD_WRITER = textwrap.dedent("""
    import sys, tantivy
    index = tantivy.Index.open(sys.argv[1])
    writer = index.writer(heap_size=15_000_000, num_threads=1)
    print("locked", flush=True)
    sys.stdin.read()
""")


def test_closing_a_store_indexes_what_it_wrote(path):
    writer = SQLiteStore(path)  # e.g. `sekisho ingest`: writes, never searches
    writer.replace_document(*make_doc("d1", ["apple pear"]))
    writer.replace_document(*make_doc("d2", ["apple kiwi"]))
    assert not writer.lexical_index_current()
    writer.close()
    reader = SQLiteStore(path)  # e.g. the server
    assert reader.lexical_index_current()
    assert ids(reader, ["apple"]) == {"d1:0", "d2:0"}
    reader.close()


def test_a_writer_in_another_process_leaves_searches_to_fts5_until_it_is_done(path):
    store = SQLiteStore(path)
    store.replace_document(*make_doc("d1", ["apple pear"]))
    store.lexical_search(["apple"], 1)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WRITER, str(path) + ".lexical"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        store.replace_document(*make_doc("d2", ["apple kiwi"]))  # commits; the index cannot follow
        assert not store.lexical_index_current()
        assert ids(store, ["apple"]) == {"d1:0", "d2:0"}
        assert ids(store, ["kiwi"]) == {"d2:0"}
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert ids(store, ["kiwi"]) == {"d2:0"}
    assert store.lexical_index_current()
    store.close()


def test_an_index_left_by_another_store_file_is_not_trusted(path, clears):
    old = SQLiteStore(path)
    old.replace_document(*make_doc("old", ["apple from the old store"]))
    old.close()
    clears.clear()
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    new = SQLiteStore(path)  # same path, same generation after one write, different store
    new.replace_document(*make_doc("new", ["apple from the new store"]))
    assert ids(new, ["apple"]) == {"new:0"}
    assert ids(new, ["old"]) == set()
    assert clears == [1]
    new.close()


def test_a_damaged_index_is_rebuilt_from_the_store(path):
    store = SQLiteStore(path)
    store.replace_document(*make_doc("d1", ["apple pear"]))
    store.close()
    (path.with_name(path.name + ".lexical") / "meta.json").write_text("{not json")
    reopened = SQLiteStore(path)
    assert ids(reopened, ["apple"]) == {"d1:0"}
    assert reopened.lexical_index_current()
    reopened.close()


def test_an_unusable_index_location_falls_back_to_fts5(path, caplog):
    path.with_name(path.name + ".lexical").write_text("a file where the index folder would go")
    with caplog.at_level(logging.WARNING, logger="sekisho.store"):
        store = SQLiteStore(path)
    assert "searching with FTS5" in caplog.text
    store.replace_document(*make_doc("d1", ["apple pear"]))
    assert ids(store, ["apple"]) == {"d1:0"}
    assert not store.lexical_index_current()
    store.close()


def test_searches_stay_correct_while_another_thread_writes(path):
    """Readers on several threads while a writer replaces and deletes documents: every answer is a
    set of chunks that existed at some point, no search fails, and the index ends current."""
    store = SQLiteStore(path)
    store.replace_document(*make_doc("base", ["apple base"]))
    errors: list[BaseException] = []
    stop = threading.Event()
    possible = {"base:0"} | {f"w{i}:{j}" for i in range(30) for j in range(2)}

    def read():
        while not stop.is_set():
            try:
                found = ids(store, ["apple"])
                assert found <= possible and "base:0" in found
                assert len(store.vector_search(np.ones(8), 5)) >= 1
            except BaseException as exc:  # reported after the join
                errors.append(exc)
                return

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for i in range(30):
        store.replace_document(*make_doc(f"w{i}", ["apple one", "apple two"]))
        if i % 3 == 0:
            store.delete_document(f"w{i}")
    stop.set()
    for t in readers:
        t.join(timeout=60)
    assert errors == []
    expected = {"base:0"} | {f"w{i}:{j}" for i in range(30) if i % 3 for j in range(2)}
    assert ids(store, ["apple"]) == expected
    assert store.lexical_index_current()
    store.close()

"""Each PostgreSQL server's own tantivy index of the database's chunks: it ranks like PostgreSQL's
BM25, follows writes made through any server, is rebuilt when its folder goes, and is never taken
from another database."""

from __future__ import annotations

import shutil
import time

import psycopg
import pytest

from conftest import schema_url
from sekisho.store.postgres import PostgresStore
from test_store_sqlite import make_doc

# Lengths and term frequencies differ from chunk to chunk, so no two scores tie (tie order is each
# engine's own).
CORPORA = {
    "fruit": [
        ("d1", ["apple pear fig", "fig plum plum apple kiwi", "kiwi"], ()),
        ("d2", ["apple kiwi kiwi kiwi melon grape", "pear pear pear", "melon"], ("人事",)),
        ("d3", ["plum apple", "grape grape fig apple apple lemon lime"], ("経理",)),
        ("d4", ["lemon lime lime apple", "fig"], ("人事", "経理")),
    ],
    "japanese": [
        ("j1", ["東京 の 天気 は 晴れ", "大阪 の 天気 は 雨 雨 と 風"], ()),
        ("j2", ["東京 タワー の 高さ", "天気 予報 東京 大阪 京都 名古屋"], ("人事",)),
        ("j3", ["京都 の 寺 と 東京 の 寺 と 寺", "雨"], ("経理",)),
    ],
}
QUERIES = {
    "fruit": [["apple"], ["fig", "kiwi"], ["plum", "apple", "pear"], ["MELON", "lime"], ["missing"]],
    "japanese": [["東京"], ["天気", "雨"], ["寺", "京都", "高さ"], ["晴れ", "風", "東京"]],
}
TAGS = [None, (), ("人事",), ("経理",), ("人事", "経理"), ("*",)]


def caught_up(store: PostgresStore) -> None:
    """Wait for this server's index to reflect the database (a background catch-up may hold it)."""
    deadline = time.monotonic() + 20
    while not store.lexical_index_current():
        assert time.monotonic() < deadline, "the lexical index did not catch up"
        store.lexical_index.sync()
        time.sleep(0.02)


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "sekisho.lexical"


@pytest.fixture
def server(postgres_url, folder):
    s = PostgresStore(postgres_url, folder)
    yield s
    s.close()


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_the_index_ranks_like_postgresql(postgres_url, server, corpus):
    for doc_id, texts, tags in CORPORA[corpus]:
        server.replace_document(*make_doc(doc_id, texts, tags=tags))
    postgresql = PostgresStore(postgres_url)  # no index: PostgreSQL's BM25 answers
    postgresql.lexical.postings_budget = float("inf")  # tantivy walks every term
    caught_up(server)
    for terms in QUERIES[corpus]:
        for tags in TAGS:
            expected = postgresql.lexical_search(terms, 10, tags)
            found = server.lexical_search(terms, 10, tags)
            assert [cid for cid, _ in found] == [cid for cid, _ in expected], (terms, tags)
            assert server.lexical_index_current()
    postgresql.close()


def test_a_write_through_one_server_is_found_through_another(postgres_url, tmp_path, server):
    server.replace_document(*make_doc("d1", ["apple pear"]))
    other = PostgresStore(postgres_url, tmp_path / "other-host.lexical")
    assert [cid for cid, _ in other.lexical_search(["apple"], 5)] == ["d1:0"]  # PostgreSQL, meanwhile
    caught_up(other)
    server.replace_document(*make_doc("d2", ["apple kiwi"], tags=("人事",)))
    assert not other.lexical_index_current()
    assert {cid for cid, _ in other.lexical_search(["kiwi"], 5)} == {"d2:0"}
    assert other.lexical_search(["kiwi"], 5, ()) == []
    caught_up(other)  # by replaying the change log: no rebuild
    assert {cid for cid, _ in other.lexical_search(["apple"], 5)} == {"d1:0", "d2:0"}
    assert other.lexical_search(["kiwi"], 5, ()) == []
    server.delete_document("d1")
    caught_up(other)
    assert [cid for cid, _ in other.lexical_search(["apple"], 5)] == ["d2:0"]
    other.close()


def test_a_deleted_index_folder_is_rebuilt_and_searches_go_on(server, folder):
    server.replace_document(*make_doc("d1", ["apple pear", "fig"]))
    caught_up(server)
    server.close()
    shutil.rmtree(folder)
    reopened = PostgresStore(server.db.url, folder)
    assert not reopened.lexical_index_current()
    assert [cid for cid, _ in reopened.lexical_search(["fig"], 5)] == ["d1:1"]
    caught_up(reopened)
    assert [cid for cid, _ in reopened.lexical_search(["fig"], 5)] == ["d1:1"]
    reopened.close()


def test_an_index_of_another_database_is_not_used(postgres_url, server, folder, request):
    server.replace_document(*make_doc("d1", ["apple"]))
    caught_up(server)
    other_url = request.getfixturevalue("postgres_server")
    with psycopg.connect(other_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA t_other_db")
    try:
        other = PostgresStore(schema_url(other_url, "t_other_db"), folder)
        ours, theirs = server.get_meta("store_id"), other.get_meta("store_id")
        assert ours != theirs
        assert other.lexical_index.folder == folder / theirs != server.lexical_index.folder
        # Even the first database's index copied into its subfolder is not taken for its own.
        other.close()
        shutil.rmtree(folder / theirs, ignore_errors=True)
        shutil.copytree(folder / ours, folder / theirs)
        other = PostgresStore(schema_url(other_url, "t_other_db"), folder)
        assert not other.lexical_index_current()
        assert other.lexical_search(["apple"], 5) == []
        other.replace_document(*make_doc("o1", ["pear"]))
        caught_up(other)
        assert other.lexical_search(["apple"], 5) == []
        assert [cid for cid, _ in other.lexical_search(["pear"], 5)] == ["o1:0"]
        other.close()
    finally:
        with psycopg.connect(other_url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA t_other_db CASCADE")

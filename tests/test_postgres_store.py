"""What only the PostgreSQL store keeps: per-term chunk counts that follow every write, and the
bulk load that builds the HNSW index once."""

from __future__ import annotations

import numpy as np
import pytest

from sekisho.store.postgres import PostgresStore
from test_store_sqlite import make_doc


@pytest.fixture
def store(postgres_url):
    s = PostgresStore(postgres_url)
    yield s
    s.close()


def recounted(store) -> dict[str, int]:
    with store.db.read() as conn:
        return dict(conn.execute("SELECT word, ndoc FROM ts_stat('SELECT tsv FROM chunk_lexical')").fetchall())


def kept(store) -> dict[str, int]:
    with store.db.read() as conn:
        return dict(conn.execute("SELECT term, chunks FROM term_stats WHERE chunks <> 0").fetchall())


def test_term_statistics_follow_every_write(store):
    store.replace_document(*make_doc("d1", ["Apple banana", "banana cherry", "cherry cherry"]))
    store.replace_document(*make_doc("d2", ["apple durian"], path="shared.txt"))
    assert kept(store) == recounted(store) == {"apple": 2, "banana": 2, "cherry": 2, "durian": 1}
    store.replace_document(*make_doc("d1", ["fig"]))  # replaced
    store.replace_document(*make_doc("d3", ["grape"], path="shared.txt"))  # the path's old owner goes
    assert kept(store) == recounted(store) == {"fig": 1, "grape": 1}
    store.reindex_lexical(lambda document, chunks: [f"{c.text} new" for c in chunks], "scheme-2")
    assert kept(store) == recounted(store) == {"fig": 1, "grape": 1, "new": 2}
    store.delete_document("d3")
    assert kept(store) == recounted(store) == {"fig": 1, "new": 1}


def test_a_bulk_load_builds_the_vector_index_once_at_the_end(store):
    def index_exists() -> bool:
        with store.db.read() as conn:
            return conn.execute("SELECT to_regclass('chunk_vectors_hnsw') IS NOT NULL").fetchone()[0]

    store.replace_document(*make_doc("d0", ["zero"]))
    assert index_exists()
    with store.bulk_load():
        for i in range(1, 5):
            store.replace_document(*make_doc(f"d{i}", [f"word{i}", "shared"]))
        assert not index_exists()
        assert len(store.vector_search(np.ones(8), 20)) == 9  # exact meanwhile
    assert index_exists() and store.get_meta("vector_index_deferred") is None
    assert [cid for cid, _ in store.lexical_search(["word3"], 5)] == ["d3:0"]

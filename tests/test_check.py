"""`sekisho check` (#19: there was no integrity command beyond `audit verify`): a healthy
deployment passes; each kind of damage to the store, its indexes, the audit chain or the upload
queue is one line naming it, and the exit code is 1. Pending work (an upload to resume) is a
note, not a problem."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sekisho.cli import app as cli
from sekisho.db import SQLiteDatabase
from sekisho.ingest.jobs import JobQueue
from server_fixtures.support import CITY

CONFIG = ('[store]\npath = "kb.db"\n[retrieval]\nembedder = "use-m3"\n'
          '[audit]\npath = "audit.db"\nkey_path = "signing.key"\ncheckpoint_every = 4\n')


def sekisho(folder: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(folder / "sekisho.toml"), *args])


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Path:
    """A deployment as the CLI leaves it: the city notices ingested, questions asked and audited,
    the lexical index caught up."""
    folder = tmp_path_factory.mktemp("healthy")
    (folder / "sekisho.toml").write_text(CONFIG, encoding="utf-8")
    assert sekisho(folder, "ingest", str(CITY)).exit_code == 0
    for question in ("住民票の写しの手数料は？", "図書館の休館日は？", "粗大ごみの出し方は？"):
        assert sekisho(folder, "ask", question).exit_code == 0
    assert sekisho(folder, "search", "手数料").exit_code == 0
    return folder


@pytest.fixture
def copy(healthy, tmp_path) -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(healthy, folder)
    return folder


def _sql(folder: Path, *statements: str) -> None:
    conn = sqlite3.connect(folder / "kb.db")
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def test_a_healthy_deployment_passes(healthy):
    result = sekisho(healthy, "check")
    assert result.exit_code == 0, result.output
    assert "problem" not in result.output
    assert "chunks, generation" in result.output and "chain intact" in result.output
    assert "lexical index" in result.output and "current" in result.output


@pytest.mark.parametrize("damage, expected", [
    (["DELETE FROM chunk_vectors WHERE rowid = (SELECT min(rowid) FROM chunks)"], "without a vector"),
    (["DELETE FROM chunk_fts WHERE rowid = (SELECT min(rowid) FROM chunks)"], "without an FTS5 row"),
    (["INSERT INTO chunk_vectors(rowid, vector) VALUES (999999, x'00000000')"], "vectors of 2 different lengths"),
    (["UPDATE documents SET tags = '[\"人事\"]' WHERE path LIKE '%juminhyo.md'"], "access tags differ"),
    (["PRAGMA foreign_keys = OFF", "DELETE FROM chunks WHERE doc_id = (SELECT min(id) FROM documents)"],
     "document without chunks"),
    (["UPDATE meta SET value = '0' WHERE key = 'generation'"], "change log runs past"),
])
def test_each_kind_of_store_damage_is_one_line(copy, damage, expected):
    _sql(copy, *damage)
    result = sekisho(copy, "check")
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if line.startswith("problem:")]
    assert any(expected in line for line in problems), result.output


def test_a_lexical_index_that_claims_to_be_current_but_is_not_is_a_problem(copy):
    # Rows removed behind the index's back, without a new generation: it still says it is current.
    _sql(copy, "DELETE FROM chunks WHERE rowid = (SELECT max(rowid) FROM chunks)",
         "DELETE FROM chunk_fts WHERE rowid NOT IN (SELECT rowid FROM chunks)",
         "DELETE FROM chunk_vectors WHERE rowid NOT IN (SELECT rowid FROM chunks)")
    result = sekisho(copy, "check")
    assert result.exit_code == 1 and "lexical index" in result.output and "delete the folder" in result.output


def test_a_store_that_is_not_a_database_is_a_problem(copy):
    (copy / "kb.db").write_bytes(b"this is not SQLite" * 100)
    for leftover in ("kb.db-wal", "kb.db-shm"):
        (copy / leftover).unlink(missing_ok=True)
    result = sekisho(copy, "check")
    assert result.exit_code == 1 and "problem: store" in result.output


def test_an_altered_audit_record_is_a_problem(copy):
    conn = sqlite3.connect(copy / "audit.db")
    conn.execute("UPDATE audit_log SET body = replace(body, '\"ok\"', '\"blocked\"') WHERE kind = 'ask'")
    conn.commit()
    conn.close()
    result = sekisho(copy, "check")
    assert result.exit_code == 1 and "audit log" in result.output and "altered" in result.output


def test_an_upload_waiting_is_a_note_and_a_lost_one_a_problem(copy):
    db = SQLiteDatabase(copy / "kb.db", foreign_keys=True)
    try:
        queue = JobQueue(db, copy / "kb.db.uploads")
        job = queue.submit("key:a:alice", [("a.txt", "本文".encode()), ("b.txt", "本文".encode())])
    finally:
        db.close()
    waiting = sekisho(copy, "check")
    assert waiting.exit_code == 0 and "note: upload queue: 2 files queued" in waiting.output
    (copy / "kb.db.uploads" / job.id / "1").unlink()
    lost = sekisho(copy, "check")
    assert lost.exit_code == 1 and f"job {job.id} file 1 (b.txt, queued)" in lost.output


# --- the same questions of a PostgreSQL store -------------------------------------------------------

def _postgres_deployment(folder: Path, url: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "sekisho.toml").write_text(CONFIG.replace('[store]\n', f'[store]\nurl = "{url}"\n'), encoding="utf-8")
    assert sekisho(folder, "ingest", str(CITY / "juminhyo.md"), str(CITY / "toshokan.txt")).exit_code == 0
    assert sekisho(folder, "ask", "住民票の写しの手数料は？").exit_code == 0
    return folder


def test_a_healthy_postgresql_deployment_passes_and_an_empty_one_is_a_note(postgres_url, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "sekisho.toml").write_text(CONFIG.replace('[store]\n', f'[store]\nurl = "{postgres_url}"\n'),
                                        encoding="utf-8")
    result = sekisho(empty, "check")
    assert result.exit_code == 0 and "no sekisho tables yet" in result.output, result.output
    folder = _postgres_deployment(tmp_path / "pg", postgres_url)
    result = sekisho(folder, "check")
    assert result.exit_code == 0, result.output
    assert "2 documents" in result.output and "chain intact" in result.output and "problem" not in result.output


@pytest.mark.parametrize("damage, expected", [
    ("DELETE FROM chunk_vectors WHERE rowid = (SELECT min(rowid) FROM chunks)", "1 chunks without a vector"),
    ("DELETE FROM chunk_lexical WHERE rowid = (SELECT min(rowid) FROM chunks)", "without a lexical row"),
    ("UPDATE documents SET tags = '[\"人事\"]' WHERE path LIKE '%juminhyo.md'", "access tags differ"),
    ("UPDATE meta SET value = '1' WHERE key = 'chunks'", "BM25's counts say 1 chunks"),
    ("UPDATE term_stats SET chunks = chunks + 1 WHERE term = (SELECT min(term) FROM term_stats)",
     "1 terms whose chunk count differs"),
    ("UPDATE audit_log SET body = replace(body, '\"ok\"', '\"blocked\"') WHERE kind = 'ask'", "altered"),
])
def test_each_kind_of_postgresql_damage_is_one_line(postgres_url, tmp_path, damage, expected):
    import psycopg

    folder = _postgres_deployment(tmp_path, postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(damage)
    result = sekisho(folder, "check")
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if line.startswith("problem:")]
    # (A lexical row gone also leaves BM25's counts wrong: each consequence is its own line.)
    assert any(expected in line for line in problems), result.output


def test_this_hosts_lexical_index_of_a_postgresql_store_is_reported(postgres_url, tmp_path):
    from sekisho.store.postgres import PostgresStore

    folder = _postgres_deployment(tmp_path, postgres_url)
    shutil.rmtree(folder / "sekisho.lexical", ignore_errors=True)  # the CLI's own runs may have begun one
    result = sekisho(folder, "check")
    assert result.exit_code == 0 and "not built yet (PostgreSQL answers" in result.output, result.output
    server = PostgresStore(postgres_url, folder / "sekisho.lexical")
    assert server.lexical_index.sync()
    server.close()
    result = sekisho(folder, "check")
    assert result.exit_code == 0 and "sekisho.lexical" in result.output, result.output
    assert "current," in result.output
    elsewhere = PostgresStore(postgres_url)  # another host's server writes
    elsewhere.delete_document(elsewhere.documents()[0].id)
    elsewhere.close()
    result = sekisho(folder, "check")
    assert result.exit_code == 0 and "it catches up at the next search" in result.output, result.output

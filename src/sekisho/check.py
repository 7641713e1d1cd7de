"""`sekisho check`: is everything sekisho keeps whole and consistent? For operators after an
incident, and for the crash tests after kill -9.

    report = check(settings)
    report.problems   # one line each: what is wrong, where, what it means
    report.notes      # nothing wrong, something pending (an index that catches up at the next
                      # search, uploads that resume at the next start)

What is checked, read-only (nothing is repaired, created or caught up):

- the store: SQLite's own integrity and foreign-key checks; every document has chunks; every
  chunk has its FTS5 row and its vector and nothing else has one; vectors all have one length;
  each document's tags are the same in its row and in the tag table; the change log does not run
  past the store's generation;
- the lexical index beside the store (tantivy): when it says it reflects the store's current
  generation, it holds exactly the store's chunks;
- the audit log: the hash chain, the signed checkpoints, the witness (AuditLog.verify);
- the upload queue: every queued or running file still has its spooled payload.

On PostgreSQL (`[store] url`) the same questions are asked of its tables: every document has
chunks, every chunk its lexical row and its vector, one vector dimension, tags alike in row and
table, and the counts BM25 reads (chunks, tokens, per-term chunk counts) equal to what is stored;
and this host's tantivy index of them (`[store] lexical_index`) as for SQLite.
The database's own integrity is the server's job (and its backups'), not this command's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sekisho.config import Settings, lexical_index_folder, resolve_path, upload_spool

_SHOWN = 10  # rows named per kind of problem; the rest are counted


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # what was looked at, one line each

    @property
    def ok(self) -> bool:
        return not self.problems


def check(settings: Settings) -> CheckReport:
    report = CheckReport()
    if settings.store.url:
        _check_postgres_store(settings, report)
    else:
        _check_store(resolve_path(settings, settings.store.path), upload_spool(settings), report)
    _check_audit(settings, report)
    return report


# --- the store and what is derived from it ---------------------------------------------------------

def _check_store(path: Path, spool: Path, report: CheckReport) -> None:
    from sekisho.store import SQLiteStore, StoreError
    from sekisho.store.sqlite.lexical import index_folder

    if not path.exists():
        report.notes.append(f"store {path}: does not exist yet (nothing ingested)")
        return
    try:
        # Without the tantivy index: opening it would catch it up, and this only looks.
        store = SQLiteStore(path, lexical_index=False)
    except StoreError as exc:
        report.problems.append(f"store: {exc}")
        return
    try:
        with store.db.read() as conn:
            _store_rows(conn, path, report)
            generation = _change_log(conn, report)
            chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
            documents = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
            _reembedding(conn, f"store {path}", chunks, report)
        report.checked.append(f"store {path}: {documents} documents, {chunks} chunks, generation {generation}")
        _check_lexical_index(index_folder(path), "FTS5", store.get_meta("store_id") or "",
                             generation, chunks, report)
        _check_jobs(store.db, spool, report)
    finally:
        store.close()


def _store_rows(conn, path: Path, report: CheckReport) -> None:  # noqa: ANN001 (sqlite3 connection)
    integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    if integrity != ["ok"]:
        report.problems.extend(f"store {path}: SQLite integrity: {line}" for line in integrity[:_SHOWN])
    for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check").fetchall()[:_SHOWN]:
        report.problems.append(f"store {path}: {table} row {rowid} points at a missing {parent} row")
    _named(report, f"store {path}: document without chunks (not searchable)", conn.execute(
        "SELECT path FROM documents d WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.doc_id = d.id)"))
    pairs = (("chunks", "chunk_vectors", "a vector (dense search misses it)"),
             ("chunk_vectors", "chunks", "a chunk (a vector of nothing)"),
             ("chunks", "chunk_fts", "an FTS5 row (lexical search misses it)"),
             ("chunk_fts", "chunks", "a chunk (an FTS5 row of nothing)"))
    for table, other, missing in pairs:
        count = conn.execute(f"SELECT count(*) FROM {table} WHERE rowid NOT IN (SELECT rowid FROM {other})").fetchone()[0]
        if count:
            report.problems.append(f"store {path}: {count} rows of {table} without {missing}")
    lengths = conn.execute("SELECT length(vector), count(*) FROM chunk_vectors GROUP BY 1").fetchall()
    if len(lengths) > 1:
        report.problems.append(f"store {path}: vectors of {len(lengths)} different lengths "
                               f"({', '.join(f'{n} of {size} bytes' for size, n in lengths)}): two embedders mixed")
    in_rows: dict[str, set[str]] = {}
    for doc_id, tags in conn.execute("SELECT id, tags FROM documents"):
        in_rows[doc_id] = set(json.loads(tags))
    in_table: dict[str, set[str]] = {}
    for doc_id, tag in conn.execute("SELECT doc_id, tag FROM document_tags"):
        in_table.setdefault(doc_id, set()).add(tag)
    differ = [doc_id for doc_id, tags in in_rows.items() if tags != in_table.get(doc_id, set())]
    _named(report, f"store {path}: document whose access tags differ between its row and the tag table "
                   "(searches may show it to the wrong keys)", ((d,) for d in differ))


def _change_log(conn, report: CheckReport) -> int:  # noqa: ANN001 (sqlite3 connection)
    meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('generation', 'changes_floor')"))
    generation, floor = int(meta.get("generation", 0)), int(meta.get("changes_floor", 0))
    logged = conn.execute("SELECT max(generation) FROM chunk_changes").fetchone()[0]
    if floor > generation or (logged is not None and logged > generation):
        report.problems.append(f"store: the change log runs past the store's generation {generation} "
                               f"(floor {floor}, last logged {logged}): derived indexes cannot catch up from it")
    return generation


def _check_lexical_index(folder: Path, fallback: str, store_id: str, generation: int, chunks: int,
                         report: CheckReport) -> None:
    """The tantivy index derived from the store (store/lexical_index.py); `fallback` answers
    searches while it is not current."""
    from sekisho.store.tantivy_index import LexicalIndexError, TantivyIndex

    if not folder.exists():
        report.notes.append(f"lexical index {folder}: not built yet ({fallback} answers; the next search builds it)")
        return
    try:
        index = TantivyIndex(folder)
        state, indexed = index.state(), index.chunk_count()
    except (LexicalIndexError, ValueError, OSError) as exc:
        report.notes.append(f"lexical index {folder}: unreadable ({exc}); it is rebuilt at the next search")
        return
    if state is None or state.store_id != store_id:
        report.notes.append(f"lexical index {folder}: not built for this store ({fallback} answers); "
                            "rebuilt at the next search")
    elif state.generation != generation:
        report.notes.append(f"lexical index {folder}: reflects generation {state.generation} of {generation}; "
                            "it catches up at the next search")
    elif indexed != chunks:
        report.problems.append(f"lexical index {folder}: holds {indexed} chunks but says it reflects the store's "
                               f"{chunks}; delete the folder (it is rebuilt)")
    else:
        report.checked.append(f"lexical index {folder}: current, {indexed} chunks")


def _check_jobs(db, spool: Path, report: CheckReport) -> None:  # noqa: ANN001 (the store's Database)
    from sekisho.ingest.jobs import JobQueue

    queue = JobQueue(db, spool)
    with queue.db.read() as conn:
        waiting = conn.execute("SELECT job_id, ordinal, name, status FROM ingest_files "
                               "WHERE status IN ('queued', 'running') ORDER BY job_id, ordinal").fetchall()
        jobs = {row[0] for row in conn.execute("SELECT id FROM ingest_jobs")}
    lost = [(f"job {job} file {ordinal} ({name}, {status})",) for job, ordinal, name, status in waiting
            if not (spool / job / str(ordinal)).exists()]
    _named(report, "upload queue: file whose spooled payload is gone (it cannot be ingested; upload it again)", lost)
    if waiting:
        running = sum(status == "running" for *_, status in waiting)
        report.notes.append(f"upload queue: {len(waiting) - running} files queued, {running} being ingested or "
                            "interrupted (a file whose process is gone resumes at the next start)")
    strays = sorted(p.name for p in spool.iterdir() if p.is_dir() and p.name not in jobs) if spool.exists() else []
    if strays:
        report.notes.append(f"upload queue: {len(strays)} spooled folders of uploads interrupted before they were "
                            f"acknowledged ({', '.join(strays[:3])}{'…' if len(strays) > 3 else ''}); safe to delete")
    report.checked.append(f"upload queue: {len(jobs)} jobs kept, {len(waiting)} files waiting")


def _named(report: CheckReport, what: str, rows) -> None:  # noqa: ANN001 (iterable of 1-tuples)
    names = [row[0] for row in rows]
    report.problems.extend(f"{what}: {name}" for name in names[:_SHOWN])
    if len(names) > _SHOWN:
        report.problems.append(f"{what}: … and {len(names) - _SHOWN} more")


# --- PostgreSQL ---------------------------------------------------------------------------------------

def _check_postgres_store(settings: Settings, report: CheckReport) -> None:
    """The database's tables, and this host's tantivy index of them (each server host keeps its
    own: `sekisho check` on another host looks at that host's)."""
    from sekisho.db import DatabaseError
    from sekisho.db.postgres import PostgresDatabase

    try:
        # The database handle alone: opening the store would migrate it, and this only looks.
        db = PostgresDatabase(settings.store.url)
    except DatabaseError as exc:
        report.problems.append(f"store: {exc}")
        return
    where = f"store {db.where}"
    try:
        with db.read() as conn:
            if conn.execute("SELECT to_regclass('documents') IS NULL").fetchone()[0]:
                report.notes.append(f"{where}: no sekisho tables yet (nothing ingested)")
                return
            generation, chunks = _postgres_rows(conn, where, report)
            store_id = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]
            if conn.execute("SELECT to_regclass('chunk_changes') IS NOT NULL").fetchone()[0]:
                _change_log(conn, report)
        folder = lexical_index_folder(settings)
        if folder is not None:
            _check_lexical_index(folder / store_id, "PostgreSQL", store_id, generation, chunks, report)
        _check_jobs(db, upload_spool(settings), report)
    except db.errors as exc:
        report.problems.append(f"{where}: cannot be read: {exc}")
    finally:
        db.close()


def _postgres_rows(conn, where: str, report: CheckReport) -> tuple[int, int]:  # noqa: ANN001 (PgConnection)
    """Checks the rows; returns the store's generation and how many chunks it holds."""
    _named(report, f"{where}: document without chunks (not searchable)", conn.execute(
        "SELECT path FROM documents d WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.doc_id = d.id)"))
    for table, missing in (("chunk_lexical", "a lexical row (lexical search misses it)"),
                           ("chunk_vectors", "a vector (dense search misses it)")):
        count = conn.execute(f"SELECT count(*) FROM chunks c WHERE NOT EXISTS "
                             f"(SELECT 1 FROM {table} t WHERE t.rowid = c.rowid)").fetchone()[0]
        if count:
            report.problems.append(f"{where}: {count} chunks without {missing}")
    dimensions = conn.execute("SELECT vector_dims(embedding), count(*) FROM chunk_vectors GROUP BY 1").fetchall()
    if len(dimensions) > 1:
        report.problems.append(f"{where}: vectors of {len(dimensions)} different dimensions "
                               f"({', '.join(f'{n} of {d}' for d, n in dimensions)}): two embedders mixed")
    differ = conn.execute("""
        SELECT d.id FROM documents d LEFT JOIN (
            SELECT doc_id, array_agg(tag ORDER BY tag) AS tags FROM document_tags GROUP BY doc_id) t ON t.doc_id = d.id
        WHERE coalesce(t.tags, '{}') <> coalesce(
            (SELECT array_agg(value ORDER BY value) FROM json_array_elements_text(d.tags::json)), '{}')""")
    _named(report, f"{where}: document whose access tags differ between its row and the tag table "
                   "(searches may show it to the wrong keys)", differ)
    meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('chunks', 'tokens', 'generation')").fetchall())
    chunks, tokens = conn.execute("SELECT count(*), coalesce(sum(length), 0) FROM chunk_lexical").fetchone()
    if (int(meta.get("chunks", 0)), int(meta.get("tokens", 0))) != (chunks, tokens):
        report.problems.append(f"{where}: BM25's counts say {meta.get('chunks')} chunks of {meta.get('tokens')} tokens, "
                               f"the lexical rows hold {chunks} of {tokens}: rankings are skewed")
    wrong_terms = conn.execute("""
        SELECT count(*) FROM (SELECT word, ndoc FROM ts_stat('SELECT tsv FROM chunk_lexical')) s
        FULL JOIN term_stats t ON t.term = s.word
        WHERE coalesce(s.ndoc, 0) <> coalesce(t.chunks, 0)""").fetchone()[0]
    if wrong_terms:
        report.problems.append(f"{where}: {wrong_terms} terms whose chunk count differs from the lexical rows: "
                               "rankings are skewed")
    documents = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
    _reembedding(conn, where, chunks, report)
    report.checked.append(f"{where}: {documents} documents, {chunks} chunks, generation {meta.get('generation')}")
    return int(meta.get("generation", 0)), chunks


def _reembedding(conn, where: str, chunks: int, report: CheckReport) -> None:  # noqa: ANN001 (either store's)
    """A re-embedding under way is pending work, not damage (retrieval/reembed.py)."""
    meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('embedder', 'staging_embedder')").fetchall())
    if "staging_embedder" in meta:
        staged = conn.execute("SELECT count(*) FROM chunk_staged_vectors").fetchone()[0]
        report.notes.append(f"{where}: re-embedding from {meta.get('embedder')!r} to {meta['staging_embedder']!r} "
                            f"under way: {staged} of {chunks} chunks staged (`sekisho reembed` goes on)")


# --- the audit log ---------------------------------------------------------------------------------

def _check_audit(settings: Settings, report: CheckReport) -> None:
    from sekisho.audit.log import AuditError, AuditLog

    url = settings.audit.url if settings.audit.url is not None else settings.store.url
    path = resolve_path(settings, settings.audit.path)
    if not url and not path.exists():
        report.notes.append(f"audit log {path}: does not exist yet")
        return
    try:
        log = AuditLog.from_settings(settings)
    except AuditError as exc:
        report.problems.append(f"audit log: {exc}")
        return
    where = log.where
    try:
        result = log.verify()
    finally:
        log.close()
    if not result.ok:
        report.problems.append(f"audit log {where}: record {result.first_bad_seq}: {result.reason}")
    else:
        report.checked.append(f"audit log {where}: {result.checked} records, {result.checkpoints} signed checkpoints, "
                              f"chain intact")

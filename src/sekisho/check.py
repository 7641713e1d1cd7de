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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sekisho.config import Settings, resolve_path

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
    _check_store(resolve_path(settings, settings.store.path), report)
    _check_audit(settings, report)
    return report


# --- the store and what is derived from it ---------------------------------------------------------

def _check_store(path: Path, report: CheckReport) -> None:
    from sekisho.store import SQLiteStore, StoreError

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
        report.checked.append(f"store {path}: {documents} documents, {chunks} chunks, generation {generation}")
        _check_lexical_index(path, store.get_meta("store_id") or "", generation, chunks, report)
        _check_jobs(store, path, report)
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


def _check_lexical_index(path: Path, store_id: str, generation: int, chunks: int, report: CheckReport) -> None:
    from sekisho.store.sqlite.tantivy_index import LexicalIndexError, TantivyIndex

    folder = path.with_name(path.name + ".lexical")
    if not folder.exists():
        report.notes.append(f"lexical index {folder}: not built yet (FTS5 answers; the next search builds it)")
        return
    try:
        index = TantivyIndex(folder)
        state, indexed = index.state(), index.chunk_count()
    except (LexicalIndexError, ValueError, OSError) as exc:
        report.notes.append(f"lexical index {folder}: unreadable ({exc}); it is rebuilt at the next search")
        return
    if state is None or state.store_id != store_id:
        report.notes.append(f"lexical index {folder}: not built for this store; rebuilt at the next search")
    elif state.generation != generation:
        report.notes.append(f"lexical index {folder}: reflects generation {state.generation} of {generation}; "
                            "it catches up at the next search")
    elif indexed != chunks:
        report.problems.append(f"lexical index {folder}: holds {indexed} chunks but says it reflects the store's "
                               f"{chunks}; delete the folder (it is rebuilt)")
    else:
        report.checked.append(f"lexical index {folder}: current, {indexed} chunks")


def _check_jobs(store, path: Path, report: CheckReport) -> None:  # noqa: ANN001 (SQLiteStore)
    from sekisho.ingest.jobs import JobQueue

    spool = path.with_name(path.name + ".uploads")
    queue = JobQueue(store.db, spool)
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


# --- the audit log ---------------------------------------------------------------------------------

def _check_audit(settings: Settings, report: CheckReport) -> None:
    from sekisho.audit.log import AuditError, AuditLog

    path = resolve_path(settings, settings.audit.path)
    if not path.exists():
        report.notes.append(f"audit log {path}: does not exist yet")
        return
    try:
        log = AuditLog.from_settings(settings)
    except AuditError as exc:
        report.problems.append(f"audit log: {exc}")
        return
    try:
        result = log.verify()
    finally:
        log.close()
    if not result.ok:
        report.problems.append(f"audit log {path}: record {result.first_bad_seq}: {result.reason}")
    else:
        report.checked.append(f"audit log {path}: {result.checked} records, {result.checkpoints} signed checkpoints, "
                              f"chain intact")

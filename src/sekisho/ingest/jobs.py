"""Ingest jobs that outlive the process that accepted them.

An upload is recorded before it is acknowledged: its files are written to a spool folder beside
the store (`<store>.uploads/<job>/<n>`, synced to disk) and its rows to the store's database in one
transaction, so an upload answered 202 survives kill -9. Any worker process (or any server sharing
the database) claims the next queued file, ingests it, and records the outcome; a file claimed by a
process that has since died goes back to the queue (`recover`), and ingesting it again is safe
(unchanged content is skipped, a path is replaced atomically).

    queue = JobQueue(store.db, spool=store.path.with_name(store.path.name + ".uploads"))
    job = queue.submit("key:ab12:alice", [("通知.pdf", data)], tags=("人事",))
    claimed = queue.claim("host:1234")        # a worker
    queue.finish(claimed, "done", document_id=..., chunks=12)
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sekisho.db import Database, Migrations

JOB_MIGRATIONS = Migrations("jobs")
JOB_MIGRATIONS.sql("ingest_jobs", """
    CREATE TABLE ingest_jobs (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        tags TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION
    );
    CREATE TABLE ingest_files (
        job_id TEXT NOT NULL REFERENCES ingest_jobs(id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        document_id TEXT,
        chunks INTEGER,
        error TEXT,
        claimed_by TEXT,
        claimed_at DOUBLE PRECISION,
        PRIMARY KEY (job_id, ordinal)
    );
    CREATE INDEX ingest_files_by_status ON ingest_files(status, job_id, ordinal)
""")

# A claim older than this from another host is taken to be dead (its host cannot be asked).
STALE_CLAIM_S = 3600.0
KEEP_FINISHED_JOBS = 1000


@dataclass
class FileResult:
    name: str
    status: str = "queued"  # queued | running | done | failed
    document_id: str | None = None
    chunks: int | None = None
    error: str | None = None


@dataclass
class Job:
    id: str
    owner: str
    files: list[FileResult]
    tags: tuple[str, ...] = ()
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    @property
    def done(self) -> int:
        return sum(f.status in ("done", "failed") for f in self.files)

    @property
    def status(self) -> str:
        if self.done == len(self.files):
            return "failed" if all(f.status == "failed" for f in self.files) else "done"
        return "running" if any(f.status != "queued" for f in self.files) else "queued"


@dataclass(frozen=True)
class Claimed:
    job_id: str
    ordinal: int
    name: str
    owner: str
    tags: tuple[str, ...]
    payload: Path


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class JobQueue:
    def __init__(self, db: Database, spool: Path) -> None:
        self.db = db
        self.spool = spool
        JOB_MIGRATIONS.apply(db)

    def submit(self, owner: str, files: Sequence[tuple[str, bytes]], tags: Sequence[str] = ()) -> Job:
        """Record a job durably (payloads on disk, rows committed) and return it, queued."""
        job = Job(id=uuid.uuid4().hex[:16], owner=owner, files=[FileResult(name) for name, _ in files],
                  tags=tuple(tags))
        folder = self.spool / job.id
        folder.mkdir(parents=True, exist_ok=True)
        for n, (_, data) in enumerate(files):
            _write_synced(folder / str(n), data)
        _sync_directory(folder)
        with self.db.write() as conn:
            conn.execute("INSERT INTO ingest_jobs (id, owner, tags, created_at) VALUES (?, ?, ?, ?)",
                         (job.id, owner, json.dumps(list(job.tags), ensure_ascii=False), job.created_at))
            conn.executemany("INSERT INTO ingest_files (job_id, ordinal, name, status) VALUES (?, ?, ?, 'queued')",
                             [(job.id, n, name) for n, (name, _) in enumerate(files)])
        return job

    def get(self, job_id: str) -> Job | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT owner, tags, created_at, finished_at FROM ingest_jobs WHERE id = ?",
                               (job_id,)).fetchone()
            if row is None:
                return None
            files = [FileResult(name, status, document_id, chunks, error) for name, status, document_id, chunks, error
                     in conn.execute("SELECT name, status, document_id, chunks, error FROM ingest_files "
                                     "WHERE job_id = ? ORDER BY ordinal", (job_id,))]
        return Job(job_id, row[0], files, tuple(json.loads(row[1])), row[2], row[3])

    def depth(self) -> dict[str, int]:
        """Files waiting and being ingested, over every worker (the queue is in the shared database)."""
        with self.db.read() as conn:
            counts = dict(conn.execute("SELECT status, count(*) FROM ingest_files "
                                       "WHERE status IN ('queued', 'running') GROUP BY status").fetchall())
        return {"queued": counts.get("queued", 0), "running": counts.get("running", 0)}

    def claim(self, worker: str) -> Claimed | None:
        """The next queued file, now running under `worker`; None when the queue is empty. Two
        workers never claim the same file: the claim is one conditional update."""
        while True:
            with self.db.write() as conn:
                row = conn.execute(
                    "SELECT f.job_id, f.ordinal, f.name, j.owner, j.tags FROM ingest_files f "
                    "JOIN ingest_jobs j ON j.id = f.job_id WHERE f.status = 'queued' "
                    "ORDER BY j.created_at, f.job_id, f.ordinal LIMIT 1").fetchone()
                if row is None:
                    return None
                # On PostgreSQL another server may have claimed the row since it was read: the
                # update then waits for its commit, matches nothing, and the next file is tried.
                taken = conn.execute("UPDATE ingest_files SET status = 'running', claimed_by = ?, claimed_at = ? "
                                     "WHERE job_id = ? AND ordinal = ? AND status = 'queued'",
                                     (worker, time.time(), row[0], row[1])).rowcount
            if taken:
                break
        job_id, ordinal, name, owner, tags = row
        return Claimed(job_id, ordinal, name, owner, tuple(json.loads(tags)), self.spool / job_id / str(ordinal))

    def finish(self, claimed: Claimed, status: str, *, document_id: str | None = None, chunks: int | None = None,
               error: str | None = None) -> None:
        with self.db.write() as conn:
            conn.execute("UPDATE ingest_files SET status = ?, document_id = ?, chunks = ?, error = ? "
                         "WHERE job_id = ? AND ordinal = ?",
                         (status, document_id, chunks, error, claimed.job_id, claimed.ordinal))
            left = conn.execute("SELECT count(*) FROM ingest_files WHERE job_id = ? AND status IN ('queued', 'running')",
                                (claimed.job_id,)).fetchone()[0]
            if not left:
                conn.execute("UPDATE ingest_jobs SET finished_at = ? WHERE id = ?", (time.time(), claimed.job_id))
        claimed.payload.unlink(missing_ok=True)
        if not left:
            shutil.rmtree(self.spool / claimed.job_id, ignore_errors=True)
            self._forget_old()

    def recover(self, alive: Callable[[str], bool] | None = None) -> int:
        """Put back in the queue every file claimed by a worker that is gone: a process of this
        host that no longer runs, or a claim from elsewhere older than STALE_CLAIM_S. A file whose
        payload is missing (the spool was deleted) fails, naming why. Returns the files requeued."""
        alive = alive or _process_alive
        now = time.time()
        with self.db.write() as conn:
            running = conn.execute("SELECT job_id, ordinal, claimed_by, claimed_at FROM ingest_files "
                                   "WHERE status = 'running'").fetchall()
            dead = [(job_id, ordinal) for job_id, ordinal, by, at in running
                    if not alive(by or "") and (_same_host(by or "") or now - (at or 0) > STALE_CLAIM_S)]
            requeued = 0
            for job_id, ordinal in dead:
                if (self.spool / job_id / str(ordinal)).exists():
                    conn.execute("UPDATE ingest_files SET status = 'queued', claimed_by = NULL, claimed_at = NULL "
                                 "WHERE job_id = ? AND ordinal = ?", (job_id, ordinal))
                    requeued += 1
                else:
                    conn.execute("UPDATE ingest_files SET status = 'failed', error = ? WHERE job_id = ? AND ordinal = ?",
                                 ("the upload's file was lost while its ingestion was interrupted; upload it again",
                                  job_id, ordinal))
        return requeued

    def _forget_old(self) -> None:
        """Finished jobs beyond the newest KEEP_FINISHED_JOBS go (the audit log keeps what happened)."""
        with self.db.write() as conn:
            # Their files go with them (ON DELETE CASCADE).
            conn.execute("DELETE FROM ingest_jobs WHERE finished_at < (SELECT finished_at FROM ingest_jobs WHERE "
                         "finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT 1 OFFSET ?)", (KEEP_FINISHED_JOBS,))


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _sync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _same_host(worker: str) -> bool:
    return worker.rsplit(":", 1)[0] == socket.gethostname()


def _process_alive(worker: str) -> bool:
    """Whether the process named by `worker` ("host:pid") still runs; other hosts' are unknown (True)."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return not _same_host(worker)
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

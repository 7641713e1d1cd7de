"""The audit log: append-only, hash-chained, durable, with signed checkpoints.

Each record stores the hash of the one before it, so editing, deleting, reordering or inserting a
record breaks the chain at that record. Someone who rewrites the whole chain after an edit cannot
re-sign the checkpoints (Ed25519 over (seq, head hash), recorded in the chain itself every
`checkpoint_every` records) without the organisation's key, so verification catches that too.
Retention (`prune`) deletes old records but leaves a signed anchor holding the hash of the last
deleted record, so what remains still verifies.

On a `sekisho.db.Database`: an SQLite file of its own (WAL with synchronous=FULL, each append
committed and fsynced before it returns, BEGIN IMMEDIATE so that several processes append safely),
or PostgreSQL shared by several servers (every write transaction takes one advisory lock before it
reads the chain head, so appends from every server form one chain; synchronous_commit is on for
it whatever the server's default, so an append is durable when it returns).

Group commit: appends from many threads at once share transactions. Whoever takes the writer lock
commits every append queued by then, each in a savepoint of its own (one that fails is rolled back
alone), with one fsync for all; each caller returns only once its own record is durable. Under
load the batches grow by themselves; alone, a batch is one append (docs/benchmarks.md, ## Audit).
Reads use their own transactions (a connection per thread on SQLite, a pooled one on PostgreSQL),
so no reader sees a batch before it commits.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sekisho.audit.signing import canonical_json, load_or_create_key, public_key_b64, sha256_hex, sign, signature_valid
from sekisho.db import (
    Connection,
    Database,
    DatabaseError,
    Migrations,
    advisory_key,
    copy_table,
    dialect_of,
    open_database,
)
from sekisho.errors import InvalidInput, SekishoError
from sekisho.text import nfkc, parse_day

GENESIS = "0" * 64
T = TypeVar("T")
CHECKPOINT = "checkpoint"
SCHEMA_VERSION = 1
# Every audit write transaction on PostgreSQL holds this lock from before it reads the head.
AUDIT_LOCK = advisory_key("audit")

AUDIT_MIGRATIONS = Migrations("audit")


@AUDIT_MIGRATIONS.step("chain")
def _chain(conn: Connection) -> None:
    # IF NOT EXISTS: audit files from before named migrations already have these tables.
    seq = "INTEGER" if dialect_of(conn) == "sqlite" else "BIGINT"
    for statement in (
        f"CREATE TABLE IF NOT EXISTS audit_log (seq {seq} PRIMARY KEY, ts TEXT NOT NULL, kind TEXT NOT NULL, "
        "body TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS audit_log_kind ON audit_log(kind, seq)",
        f"CREATE TABLE IF NOT EXISTS audit_anchor (id INTEGER PRIMARY KEY CHECK (id = 1), seq {seq} NOT NULL, "
        "hash TEXT NOT NULL, pruned_before TEXT NOT NULL, ts TEXT NOT NULL, public_key TEXT NOT NULL, "
        "signature TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ):
        conn.execute(statement)
    conn.execute("INSERT INTO audit_meta(key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
                 (str(SCHEMA_VERSION),))


# Reports over a period (usage) find its first and last records by time.
AUDIT_MIGRATIONS.sql("timestamps", "CREATE INDEX IF NOT EXISTS audit_log_ts ON audit_log(ts)")

# Where the two dialects spell a query differently.
_PRINCIPAL = {"sqlite": "json_extract(body, '$.principal')", "postgresql": "(body::jsonb ->> 'principal')"}
_CONTAINS = {"sqlite": "instr(body, ?) > 0", "postgresql": "strpos(body, ?) > 0"}


class AuditError(SekishoError):
    """The audit log cannot be opened or written; the message names the file and the reason."""


class AuditQueryError(InvalidInput, AuditError):
    """A query the log cannot answer as asked (a cut-off that is not a date)."""


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    hash: str
    ts: str = ""
    kind: str = ""
    prev: str = ""
    record: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts": self.ts, "kind": self.kind, "prev": self.prev, "hash": self.hash,
                "record": self.record}


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    first_bad_seq: int | None
    reason: str
    checked: int  # records checked
    head_seq: int = 0
    head_hash: str = GENESIS
    checkpoints: int = 0  # signed checkpoints verified
    withheld: int = 0  # export lines whose content was withheld: linked in the chain, body not checked


@dataclass(frozen=True)
class PruneResult:
    deleted: int
    anchor_seq: int
    anchor_hash: str


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _timestamp(value: datetime | str) -> str:
    """A cut-off in the log's own timestamp form, so that string comparison is time order."""
    if isinstance(value, str):
        text = nfkc(value).strip()
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            # Japanese forms too: 令和8年4月1日, R8.4.1, 2026年4月1日 (midnight UTC of that day).
            day = parse_day(text)
            if day is None:
                raise AuditQueryError(f"{value!r}: not a date (e.g. 2026-04-01, 令和8年4月1日, 2026-04-01T09:00:00Z)") from None
            value = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(seq: int, ts: str, kind: str, prev: str, body: str) -> str:
    # The body is hashed as stored (byte-exact), the header in canonical form.
    return sha256_hex(canonical_json([seq, ts, kind, prev]) + b"\n" + body.encode("utf-8"))


def _checkpoint_payload(seq: int, head: str) -> dict[str, Any]:
    return {"seq": seq, "head": head}


def _anchor_payload(seq: int, head: str, pruned_before: str) -> dict[str, Any]:
    return {"anchor_seq": seq, "head": head, "pruned_before": pruned_before}


class AuditLog:
    """`AuditLog(path, key_path=..., checkpoint_every=100)`; without a key no checkpoints are
    written (and prune, which signs its anchor, is refused)."""

    def __init__(self, target: str | Path | Database, *, key_path: str | Path | None = None,
                 checkpoint_every: int = 100) -> None:
        """`target`: the audit file, a postgresql:// URL, or an open Database (which the caller
        keeps and closes)."""
        self.key_path = Path(key_path) if key_path is not None else None
        self.checkpoint_every = max(1, int(checkpoint_every))
        self._key: Ed25519PrivateKey | None = None
        self._mac_key: bytes | None = None
        self._pending_witness: tuple[int, str] | None = None
        self._lock = threading.RLock()  # the writer: one transaction at a time in this process
        self._queued: list[_Append] = []
        self._queue_cond = threading.Condition()
        self._committing = False
        self.batches = 0  # transactions that committed appends (appends / batches: the batch size)
        # Called as observer(kind, record, seconds) after each append is durable: the server's
        # metrics read what was recorded, so they count exactly what the audit log holds.
        self.observers: list[Callable[[str, dict[str, Any], float], None]] = []
        self._owns_db = not hasattr(target, "dialect")
        try:
            # Every append is fsynced before it returns (the store's files settle for NORMAL).
            self.db: Database = open_database(target, synchronous="FULL") if self._owns_db else target
        except DatabaseError as exc:
            raise AuditError(f"cannot open the audit log: {exc}") from None
        self.where = self.db.where
        self.path = Path(self.where) if self.db.dialect == "sqlite" else None
        try:
            AUDIT_MIGRATIONS.apply(self.db)
        except self.db.errors as exc:
            self.close()
            raise AuditError(f"{self.where}: cannot open the audit log: {exc}") from None

    @classmethod
    def from_settings(cls, settings: Any) -> AuditLog:
        """In the store's PostgreSQL database when `[store] url` names one, else in its own file
        (`[audit] url` decides instead when set: "" for the file)."""
        from sekisho.config import resolve_path

        url = settings.audit.url if settings.audit.url is not None else settings.store.url
        return cls(url or resolve_path(settings, settings.audit.path),
                   key_path=resolve_path(settings, settings.audit.key_path),
                   checkpoint_every=settings.audit.checkpoint_every)

    # --- keys -------------------------------------------------------------------------------

    @property
    def key(self) -> Ed25519PrivateKey | None:
        if self._key is None and self.key_path is not None:
            self._key = load_or_create_key(self.key_path)
        return self._key

    def trusted_public_key(self) -> str | None:
        """The key file's public key; None (and no key created) when there is no key file, e.g.
        an auditor verifying a copy of the database elsewhere."""
        if self._key is None and (self.key_path is None or not self.key_path.exists()):
            return None
        key = self.key
        return public_key_b64(key) if key is not None else None

    def keyed_hash(self, value: str) -> str:
        """HMAC-SHA256 of a masked value under a key derived from the signing key: lets an
        investigator ask "did this My Number pass through?" without the log holding the value
        (a plain hash of a 12-digit number is brute-forced in minutes)."""
        if self._mac_key is None:
            key = self.key
            if key is None:
                raise AuditError(f"{self.where}: keyed hashes need the signing key (audit.key_path)")
            raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
            self._mac_key = hashlib.sha256(b"sekisho-audit-value-hmac\x00" + raw).digest()
        return hmac.new(self._mac_key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    # --- writing ----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction that no other writer of the chain interleaves with, in this
        process (the writer lock) or any other: SQLite's BEGIN IMMEDIATE takes the file's write
        lock up front; on PostgreSQL the advisory lock is taken before anything is read."""
        with self._lock:
            try:
                with self.db.write() as conn:
                    if self.db.dialect == "postgresql":
                        conn.execute("SELECT pg_advisory_xact_lock(?)", (AUDIT_LOCK,))
                        conn.execute("SET LOCAL synchronous_commit = on")
                    yield conn
                if self._pending_witness is not None:
                    self._write_witness(*self._pending_witness)
            finally:
                self._pending_witness = None

    def append(self, kind: str, record: dict[str, Any]) -> AuditEntry:
        return self.append_with(kind, record, None)[0]

    def append_with(self, kind: str, record: dict[str, Any],
                    also: Callable[[Connection, AuditEntry], T] | None) -> tuple[AuditEntry, T | None]:
        """Append, and run `also(conn, entry)` in the same transaction (a held output's review
        item lands with its record or not at all). Durable before it returns; committed together
        with whatever other threads queued meanwhile (group commit)."""
        started = time.perf_counter()
        outcome = self._append_durably(kind, record, also)
        elapsed = time.perf_counter() - started
        for observe in self.observers:
            observe(kind, record, elapsed)
        return outcome

    def _append_durably(self, kind: str, record: dict[str, Any],
                        also: Callable[[Connection, AuditEntry], T] | None) -> tuple[AuditEntry, T | None]:
        op = _Append(kind, record, also, self._body(kind, record))
        with self._queue_cond:
            self._queued.append(op)
        while True:
            if self._lock.acquire(blocking=False):
                try:
                    # Holding the writer lock, no batch is in flight: if ours is not finished it is
                    # still queued, and we commit it with everything queued behind it.
                    if not op.finished:
                        with self._queue_cond:
                            batch, self._queued = self._queued, []
                            self._committing = True
                        self._commit(batch)
                finally:
                    with self._queue_cond:
                        self._committing = False
                        self._queue_cond.notify_all()
                    self._lock.release()
                return op.outcome()
            with self._queue_cond:
                # Another thread commits (ours may be in its batch): wait for it to finish. If the
                # lock is held by something else (a review decision), look again shortly.
                if not op.finished:
                    self._queue_cond.wait(None if self._committing else 0.001)
                if op.finished:
                    return op.outcome()

    @staticmethod
    def _body(kind: str, record: dict[str, Any]) -> str:
        """The record as stored, computed before the writer lock is taken."""
        if kind == CHECKPOINT:
            raise AuditError("'checkpoint' records are written by the log itself")
        try:
            return canonical_json(record).decode("utf-8")
        except (TypeError, ValueError) as exc:
            raise AuditError(f"audit record of kind {kind!r} is not JSON-serialisable: {exc}") from None

    def _commit(self, batch: list[_Append]) -> None:
        """One transaction for the batch, a savepoint per append; every op gets its outcome."""
        try:
            with self.transaction() as conn:
                for op in batch:
                    conn.execute("SAVEPOINT append")
                    witness = self._pending_witness
                    try:
                        entry = self._append_body(conn, op.kind, op.body, op.record)
                        op.entry, op.result = entry, op.also(conn, entry) if op.also is not None else None
                    except Exception as exc:  # noqa: BLE001 - this append fails alone; the rest commit
                        conn.execute("ROLLBACK TO append")
                        self._pending_witness = witness
                        op.error = exc
                    conn.execute("RELEASE append")
            self.batches += 1
        except self.db.errors as exc:
            failure = AuditError(f"{self.where}: cannot append to the audit log: {' '.join(str(exc).split())}")
            for op in batch:
                op.entry, op.error = None, failure
        finally:
            for op in batch:
                op.finished = True

    def append_in(self, conn: Connection, kind: str, record: dict[str, Any]) -> AuditEntry:
        """Append inside a transaction the caller holds (the review queue changes its table and
        audits the decision atomically)."""
        return self._append_body(conn, kind, self._body(kind, record), record)

    def _append_body(self, conn: Connection, kind: str, body: str, record: dict[str, Any]) -> AuditEntry:
        entry = self._insert(conn, kind, body, record)
        last_checkpoint = self._last_checkpoint_seq(conn)
        if self.key is not None and entry.seq - last_checkpoint >= self.checkpoint_every:
            self._checkpoint(conn, entry)
        return entry

    def _head(self, conn: Connection) -> tuple[int, str]:
        row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        if row is not None:
            return row[0], row[1]
        anchor = conn.execute("SELECT seq, hash FROM audit_anchor WHERE id = 1").fetchone()
        return (anchor[0], anchor[1]) if anchor is not None else (0, GENESIS)

    def _last_checkpoint_seq(self, conn: Connection) -> int:
        row = conn.execute("SELECT MAX(seq) FROM audit_log WHERE kind = ?", (CHECKPOINT,)).fetchone()
        anchor = conn.execute("SELECT seq FROM audit_anchor WHERE id = 1").fetchone()
        return max(row[0] or 0, anchor[0] if anchor else 0)

    def _insert(self, conn: Connection, kind: str, body: str, record: dict[str, Any]) -> AuditEntry:
        head_seq, head_hash = self._head(conn)
        seq, ts = head_seq + 1, utc_now()
        digest = entry_hash(seq, ts, kind, head_hash, body)
        conn.execute("INSERT INTO audit_log(seq, ts, kind, body, prev, hash) VALUES (?, ?, ?, ?, ?, ?)",
                     (seq, ts, kind, body, head_hash, digest))
        return AuditEntry(seq=seq, hash=digest, ts=ts, kind=kind, prev=head_hash, record=record)

    def _checkpoint(self, conn: Connection, covered: AuditEntry) -> None:
        assert self.key is not None
        record = {
            "covers_seq": covered.seq,
            "head": covered.hash,
            "public_key": public_key_b64(self.key),
            "signature": sign(self.key, _checkpoint_payload(covered.seq, covered.hash)),
        }
        entry = self._insert(conn, CHECKPOINT, canonical_json(record).decode("utf-8"), record)
        self._pending_witness = (entry.seq, entry.hash)

    # --- witness: the latest checkpoint, kept beside the key -----------------------------------
    # A chain cannot show that records were cut off its end. The witness file, beside the key and
    # written only after the checkpoint is committed, remembers the newest checkpoint, so a log
    # truncated before it fails verification. (Records after the newest checkpoint stay
    # unprotected against truncation; checkpoint_every bounds how many.)

    @property
    def witness_path(self) -> Path | None:
        return self.key_path.with_name(self.key_path.name + ".witness") if self.key_path is not None else None

    def _read_witness(self) -> tuple[int, str] | None:
        path = self.witness_path
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path is not None else None
            return (int(data["seq"]), str(data["hash"])) if data else None
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            raise AuditError(f"{path}: the checkpoint witness file is damaged") from None

    def _write_witness(self, seq: int, digest: str) -> None:
        path = self.witness_path
        current = self._read_witness()
        if path is None or (current is not None and current[0] >= seq):
            return  # another process already recorded a newer checkpoint
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"seq": seq, "hash": digest}), encoding="utf-8")
        tmp.replace(path)

    # --- reading ----------------------------------------------------------------------------

    @staticmethod
    def _entry(row: tuple[Any, ...]) -> AuditEntry:
        seq, ts, kind, body, prev, digest = row
        return AuditEntry(seq=seq, hash=digest, ts=ts, kind=kind, prev=prev, record=json.loads(body))

    def get(self, seq: int) -> AuditEntry | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT seq, ts, kind, body, prev, hash FROM audit_log WHERE seq = ?",
                               (seq,)).fetchone()
        return self._entry(row) if row else None

    def read(self, sql: str, args: Any = ()) -> list[tuple[Any, ...]]:
        """A read-only query on the audit database, for the tables that live beside the chain."""
        with self.db.read() as conn:
            return conn.execute(sql, args).fetchall()

    def head(self) -> tuple[int, str]:
        with self.db.read() as conn:
            return self._head(conn)

    def query(self, *, kind: str | None = None, principal: str | None = None, since: datetime | str | None = None,
              until: datetime | str | None = None, limit: int = 100, newest_first: bool = True) -> list[AuditEntry]:
        where, args = [], []
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if principal:
            where.append(f"{_PRINCIPAL[self.db.dialect]} = ?")
            args.append(principal)
        if since is not None:
            where.append("ts >= ?")
            args.append(_timestamp(since))
        if until is not None:
            where.append("ts < ?")
            args.append(_timestamp(until))
        sql = "SELECT seq, ts, kind, body, prev, hash FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY seq {'DESC' if newest_first else 'ASC'} LIMIT ?"
        args.append(int(limit))
        return [self._entry(row) for row in self.read(sql, args)]

    def records(self, *, kinds: Iterable[str] = (), since: datetime | str | None = None,
                until: datetime | str | None = None, page: int = 1000) -> Iterator[AuditEntry]:
        """Every record of `kinds` (all kinds when empty) with since <= ts < until, in sequence
        order, read a page at a time: a report over millions of records holds one page in memory,
        and no read transaction stays open between pages, so appends go on meanwhile. The period
        costs what its own records cost, however long the log (docs/benchmarks.md, ## Usage)."""
        kinds = tuple(kinds)
        sqlite = self.db.dialect == "sqlite"
        # SQLite is told which index to use and which not ('+' on a column keeps an index off it);
        # PostgreSQL's planner picks the timestamp and (kind, seq) indexes by itself.
        by_time = "INDEXED BY audit_log_ts " if sqlite else ""
        unindexed = "+" if sqlite else ""
        # The range of sequence numbers that can hold the period's records, from the timestamp
        # index (exact even if the clock was ever set back: MIN and MAX over it); then a walk in
        # sequence order over that range only, each page resuming where the last one ended.
        terms, args = ["seq > ?", "seq <= ?"], []
        with self.db.read() as reader:
            first, last = 1, self._head(reader)[0]
            if since is not None:
                args.append(_timestamp(since))
                first = reader.execute(f"SELECT MIN(seq) FROM audit_log {by_time}WHERE ts >= ?",
                                       args[-1:]).fetchone()[0]
                terms.append(f"{unindexed}ts >= ?")
            if until is not None:
                args.append(_timestamp(until))
                last = reader.execute(f"SELECT MAX(seq) FROM audit_log {by_time}WHERE ts < ?",
                                      args[-1:]).fetchone()[0]
                terms.append(f"{unindexed}ts < ?")
        if first is None or last is None:
            return
        # One kind: its (kind, seq) index. Several: the rows themselves, in sequence order. The '+'
        # keeps SQLite from an index that would have it sort every remaining row for each page.
        # Timestamps are checked on every row as well: inside the range, a record appended while
        # the clock was set back can lie outside the period.
        if len(kinds) == 1:
            terms.append("kind = ?")
        elif kinds:
            terms.append(f"{unindexed}kind IN ({', '.join('?' * len(kinds))})")
        args.extend(kinds)
        sql = (f"SELECT seq, ts, kind, body, prev, hash FROM audit_log WHERE {' AND '.join(terms)} "
               "ORDER BY seq LIMIT ?")
        after = first - 1
        while True:
            rows = self.read(sql, (after, last, *args, page))
            for row in rows:
                yield self._entry(row)
            if len(rows) < page:
                return
            after = rows[-1][0]

    def find_value(self, value: str, *, limit: int = 100) -> list[AuditEntry]:
        """Records whose masked values include this one (by keyed hash; the value is never stored)."""
        digest = self.keyed_hash(value)
        rows = self.read(f"SELECT seq, ts, kind, body, prev, hash FROM audit_log WHERE {_CONTAINS[self.db.dialect]} "
                         "ORDER BY seq LIMIT ?", (digest, limit))
        return [self._entry(row) for row in rows]

    def export(self, fp: IO[str], *, since_seq: int = 0,
               shown: Callable[[AuditEntry], dict[str, Any]] = AuditEntry.to_json) -> int:
        """JSON lines, oldest first: the anchor (if pruned) then every record with its hashes, so
        an export can be re-verified elsewhere. `shown` makes each line from its entry (a reader
        without the right to some content gets it withheld). Returns the number of records written."""
        with self.db.read() as reader:
            anchor = reader.execute(
                "SELECT seq, hash, pruned_before, ts, public_key, signature FROM audit_anchor WHERE id = 1").fetchone()
            if anchor is not None and since_seq == 0:
                keys = ("seq", "hash", "pruned_before", "ts", "public_key", "signature")
                fp.write(json.dumps({"anchor": dict(zip(keys, anchor))}, ensure_ascii=False) + "\n")
            count = 0
            for row in reader.execute("SELECT seq, ts, kind, body, prev, hash FROM audit_log WHERE seq > ? "
                                      "ORDER BY seq", (since_seq,)):
                fp.write(json.dumps(shown(self._entry(row)), ensure_ascii=False) + "\n")
                count += 1
        return count

    # --- verification -----------------------------------------------------------------------

    def verify(self, *, public_key: str | None = None) -> VerifyResult:
        """Walk the chain from the anchor (or genesis); the first record that is missing, altered,
        out of place or not covered by a valid checkpoint is named. Signatures are checked
        against `public_key` (base64 Ed25519), else the key file's; a checkpoint signed by any
        other key fails."""
        # The witness is read before the snapshot: it is written after its checkpoint commits, so
        # whatever it names is in the snapshot. Appends go on meanwhile (the reader's own
        # connection holds a read transaction, not the writer lock).
        witness = self._read_witness() if public_key is None else None
        with self.db.read() as reader:  # one snapshot for the anchor, the chain and the witness's record
            anchor = reader.execute(
                "SELECT seq, hash, pruned_before, public_key, signature FROM audit_anchor WHERE id = 1").fetchone()
            rows = reader.execute("SELECT seq, ts, kind, body, prev, hash FROM audit_log ORDER BY seq")
            result = verify_chain(rows, anchor, trusted=public_key or self.trusted_public_key(),
                                  checkpoint_every=self.checkpoint_every)
            if not result.ok or witness is None:
                return result
            seq, digest = witness
            if seq > result.head_seq:
                return replace(result, ok=False, first_bad_seq=result.head_seq + 1,
                               reason=f"records from {result.head_seq + 1} on were deleted (the witness beside the key "
                                      f"records checkpoint {seq})")
            row = reader.execute("SELECT hash FROM audit_log WHERE seq = ?", (seq,)).fetchone()
            if row is not None and row[0] != digest:
                return replace(result, ok=False, first_bad_seq=seq,
                               reason=f"checkpoint {seq} differs from the one the witness beside the key recorded")
            return result

    # --- retention --------------------------------------------------------------------------

    def prune(self, before: datetime | str, *, actor: str) -> PruneResult:
        """Delete records older than `before`, keeping the rest verifiable: a signed anchor holds
        the hash of the last deleted record, and the prune itself is appended to the chain.
        Refused when the log does not verify (pruning would destroy the evidence)."""
        key = self.key
        if key is None:
            raise AuditError(f"{self.where}: pruning needs the signing key (audit.key_path) to sign the anchor")
        cutoff = _timestamp(before)
        result = self.verify()
        if not result.ok:
            raise AuditError(f"{self.where}: not pruning a log that fails verification: {result.reason}")
        with self.transaction() as conn:
            row = conn.execute("SELECT MAX(seq) FROM audit_log WHERE ts < ?", (cutoff,)).fetchone()
            cut = row[0]
            if cut is None:
                self.append_in(conn, "audit.prune", {"principal": actor, "before": cutoff, "deleted": 0})
                return PruneResult(0, 0, GENESIS)
            cut_hash = conn.execute("SELECT hash FROM audit_log WHERE seq = ?", (cut,)).fetchone()[0]
            if self.db.dialect == "sqlite":
                # Overwrite deleted pages with zeros: retention means the data is gone from the file.
                conn.execute("PRAGMA secure_delete=ON")
            deleted = conn.execute("DELETE FROM audit_log WHERE seq <= ?", (cut,)).rowcount
            if conn.execute("SELECT 1 FROM _migrations WHERE name = 'reviews.reviews'").fetchone():
                # Decided reviews of pruned requests go with them; pending ones still need a decision.
                conn.execute("DELETE FROM reviews WHERE audit_seq <= ? AND status != 'pending'", (cut,))
            conn.execute(
                "INSERT INTO audit_anchor(id, seq, hash, pruned_before, ts, public_key, signature) "
                "VALUES (1, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
                "pruned_before = excluded.pruned_before, ts = excluded.ts, public_key = excluded.public_key, "
                "signature = excluded.signature",
                (cut, cut_hash, cutoff, utc_now(), public_key_b64(key), sign(key, _anchor_payload(cut, cut_hash, cutoff))))
            self.append_in(conn, "audit.prune",
                           {"principal": actor, "before": cutoff, "deleted": deleted, "anchor_seq": cut})
        if self.db.dialect == "sqlite":
            # The deleted records leave the write-ahead log too.
            self.db.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return PruneResult(deleted, cut, cut_hash)

    def copy_from(self, source: AuditLog) -> int:
        """Append the records of `source` this log does not have yet, as they are (same numbers,
        hashes and signed checkpoints), with its prune anchor, so the chain verifies in its new
        database as it did in the old; run before any server appends here. Refused when this log
        holds records that are not the start of `source`'s chain. Returns the records copied."""
        head_seq, head_hash = self.head()
        if head_seq:
            mine = source.get(head_seq)
            if mine is None or mine.hash != head_hash:
                raise AuditError(f"{self.where}: its record {head_seq} is not {source.where}'s; the chains differ, "
                                 "not copying")
        copy_table(source.db, self.db, "audit_anchor",
                   ["id", "seq", "hash", "pruned_before", "ts", "public_key", "signature"], ["id"], update=True)
        return copy_table(source.db, self.db, "audit_log", ["seq", "ts", "kind", "body", "prev", "hash"], ["seq"],
                          update=False, where="seq > ?", params=(head_seq,))

    def close(self) -> None:
        if self._owns_db:
            self.db.close()


class _Append:
    """One queued append and, once its batch committed (or failed), its outcome."""

    __slots__ = ("also", "body", "entry", "error", "finished", "kind", "record", "result")

    def __init__(self, kind: str, record: dict[str, Any], also: Callable[[Connection, AuditEntry], Any] | None,
                 body: str):
        self.kind, self.record, self.also, self.body = kind, record, also, body
        self.entry: AuditEntry | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = False

    def outcome(self) -> tuple[AuditEntry, Any]:
        if self.error is not None:
            raise self.error
        assert self.entry is not None
        return self.entry, self.result


def verify_chain(rows: Iterable[tuple[Any, ...]], anchor: tuple[Any, ...] | None, *, trusted: str | None,
                 checkpoint_every: int) -> VerifyResult:
    """The chain check shared by the database and its JSON-lines export: rows are (seq, ts, kind,
    body, prev, hash) in seq order; anchor is (seq, hash, pruned_before, public_key, signature).
    A body of None (an export line whose content was withheld) is linked but not recomputed."""
    expected_seq, expected_prev = 1, GENESIS
    if anchor is not None:
        a_seq, a_hash, a_before, a_key, a_sig = anchor
        if (trusted and a_key != trusted) or not signature_valid(a_key, a_sig, _anchor_payload(a_seq, a_hash, a_before)):
            return VerifyResult(False, a_seq + 1, f"the prune anchor at record {a_seq} has an invalid signature", 0)
        expected_seq, expected_prev = a_seq + 1, a_hash
    last_good_checkpoint = expected_seq - 1
    checked = checkpoints = withheld = 0

    def bad(seq: int, reason: str) -> VerifyResult:
        return VerifyResult(False, seq, reason, checked, expected_seq - 1, expected_prev, checkpoints, withheld)

    for seq, ts, kind, body, prev, digest in rows:
        if seq != expected_seq:
            return bad(expected_seq, f"record {expected_seq} is missing (the next record is {seq})")
        if prev != expected_prev:
            return bad(seq, f"record {seq} does not link to record {seq - 1} "
                            "(inserted, reordered, or its predecessor was altered)")
        if body is None:
            if kind == CHECKPOINT:  # a checkpoint holds no content to withhold
                return bad(seq, f"checkpoint {seq} is malformed")
            withheld += 1
        elif entry_hash(seq, ts, kind, prev, body) != digest:
            return bad(seq, f"record {seq} was altered (its content does not match its hash)")
        if kind == CHECKPOINT:
            try:
                cp = json.loads(body)
                covers, head, key, sig = cp["covers_seq"], cp["head"], cp["public_key"], cp["signature"]
            except (ValueError, KeyError, TypeError):
                return bad(seq, f"checkpoint {seq} is malformed")
            if trusted and key != trusted:
                return bad(seq, f"checkpoint {seq} is signed by an unknown key")
            if not signature_valid(key, sig, _checkpoint_payload(covers, head)):
                return bad(seq, f"checkpoint {seq} has an invalid signature")
            if covers != seq - 1 or head != prev:
                return bad(last_good_checkpoint + 1,
                           f"records {last_good_checkpoint + 1}-{seq - 1} do not match the signed checkpoint {seq} "
                           "(the chain was rewritten)")
            last_good_checkpoint = seq
            checkpoints += 1
        elif trusted and seq - last_good_checkpoint > checkpoint_every:
            return bad(seq, f"record {seq}: no signed checkpoint within {checkpoint_every} records "
                            "(checkpoints were removed or the chain was rewritten)")
        checked += 1
        expected_seq, expected_prev = seq + 1, digest
    return VerifyResult(True, None, "ok", checked, expected_seq - 1, expected_prev, checkpoints, withheld)


def verify_export(lines: Iterable[str], *, public_key: str | None, checkpoint_every: int = 100) -> VerifyResult:
    """Verify an `AuditLog.export` file offline (an auditor's copy, no database needed)."""
    anchor = None
    rows: list[tuple[Any, ...]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if "anchor" in item and not rows:
                a = item["anchor"]
                anchor = (a["seq"], a["hash"], a["pruned_before"], a["public_key"], a["signature"])
                continue
            body = None if item.get("withheld") else canonical_json(item["record"]).decode("utf-8")
            rows.append((item["seq"], item["ts"], item["kind"], body, item["prev"], item["hash"]))
        except (ValueError, KeyError, TypeError):
            return VerifyResult(False, None, f"line {number} is not an audit export record", len(rows))
    return verify_chain(rows, anchor, trusted=public_key, checkpoint_every=checkpoint_every)

"""The audit log catches every kind of tampering done with raw SQL on its database, names the first
bad record, and survives retention and concurrent writers; every test runs on an SQLite file and on
PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import run_sql
from sekisho.audit.log import AuditError, AuditLog


@dataclass(frozen=True)
class Place:
    db: Path | str  # the audit database: an SQLite file or a PostgreSQL URL
    folder: Path  # where the key and its witness live


@pytest.fixture
def place(database_target, tmp_path) -> Place:
    return Place(database_target, tmp_path)


def _open(place, every=100):
    return AuditLog(place.db, key_path=place.folder / "signing.key", checkpoint_every=every)


def _filled(place, n=8, every=100):
    log = _open(place, every)
    for i in range(n):
        log.append("chat", {"principal": f"user{i % 2}", "prompt": f"質問{i}", "output": f"回答{i}"})
    return log


def _sql(place, *statements):
    for statement, *args in statements:
        run_sql(place.db, statement, *(args[0] if args else ()))


def _attacker_rechain(place, start_seq):
    """What someone with write access but no signing key does after an edit: recompute every hash
    from `start_seq` on so that each record links again (the documented hash: sha256 of the
    canonical [seq, ts, kind, prev] header, a newline, and the stored body)."""
    rows = run_sql(place.db, "SELECT seq, ts, kind, body, hash FROM audit_log ORDER BY seq")
    prev = "0" * 64
    for seq, ts, kind, body, digest in rows:
        if seq >= start_seq:
            header = json.dumps([seq, ts, kind, prev], separators=(",", ":"), ensure_ascii=False).encode()
            digest = hashlib.sha256(header + b"\n" + body.encode()).hexdigest()
            run_sql(place.db, "UPDATE audit_log SET prev = ?, hash = ? WHERE seq = ?", prev, digest, seq)
        prev = digest


def test_untouched_log_verifies_and_records_read_back(place):
    log = _filled(place)
    result = log.verify()
    assert result.ok and result.first_bad_seq is None
    assert result.checked == 8 and result.head_seq == 8
    assert log.get(3).record == {"principal": "user0", "prompt": "質問2", "output": "回答2"}
    assert [e.seq for e in log.query(principal="user1")] == [8, 6, 4, 2]


def test_edited_record_is_named(place):
    log = _filled(place)
    _sql(place, ("UPDATE audit_log SET body = replace(body, '回答4', '回答X') WHERE seq = 5",))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 5
    assert "altered" in result.reason


def test_edited_timestamp_is_caught(place):
    log = _filled(place)
    _sql(place, ("UPDATE audit_log SET ts = '2020-01-01T00:00:00.000000Z' WHERE seq = 2",))
    assert log.verify().first_bad_seq == 2


def test_deleted_record_is_named(place):
    log = _filled(place)
    _sql(place, ("DELETE FROM audit_log WHERE seq = 4",))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 4
    assert "missing" in result.reason


def test_reordered_records_are_caught(place):
    log = _filled(place)
    _sql(place,
         ("UPDATE audit_log SET seq = -1 WHERE seq = 3",),
         ("UPDATE audit_log SET seq = 3 WHERE seq = 4",),
         ("UPDATE audit_log SET seq = 4 WHERE seq = -1",))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 3


def test_inserted_record_is_caught(place):
    log = _filled(place)
    head_hash = log.head()[1]
    # A forged record appended at the end with a made-up hash.
    _sql(place, ("INSERT INTO audit_log(seq, ts, kind, body, prev, hash) VALUES (9, '2026-01-01T00:00:00.000000Z', "
                    "'chat', '{}', ?, ?)", (head_hash, "f" * 64)))
    assert log.verify().first_bad_seq == 9


def test_inserted_record_with_renumbering_is_caught(place):
    log = _filled(place)
    _sql(place,
         ("UPDATE audit_log SET seq = seq + 100 WHERE seq >= 5",),
         ("UPDATE audit_log SET seq = seq - 99 WHERE seq >= 105",),
         ("INSERT INTO audit_log(seq, ts, kind, body, prev, hash) SELECT 5, ts, kind, '{\"forged\":true}', hash, hash "
          "FROM audit_log WHERE seq = 4",))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 5


def test_whole_chain_rewrite_is_caught_by_signed_checkpoint(place):
    log = _filled(place, n=12, every=4)
    assert log.verify().checkpoints == 3
    _sql(place, ("UPDATE audit_log SET body = replace(body, '回答1', '回答X') WHERE seq = 2",))
    _attacker_rechain(place, 2)
    result = log.verify()
    assert not result.ok
    # The rewrite is confined to the records before the first checkpoint; it names where they start.
    assert result.first_bad_seq == 1 and "checkpoint 5" in result.reason


def test_rewrite_without_checkpoints_is_caught(place):
    log = _filled(place, n=12, every=4)
    _sql(place, ("DELETE FROM audit_log WHERE kind = 'checkpoint'",))
    for new, (old,) in enumerate(run_sql(place.db, "SELECT seq FROM audit_log ORDER BY seq"), start=1):
        run_sql(place.db, "UPDATE audit_log SET seq = ? WHERE seq = ?", new, old)
    _attacker_rechain(place, 1)
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 5 and "no signed checkpoint" in result.reason


def test_tampered_checkpoint_signature_is_caught(place):
    log = _filled(place, n=6, every=4)
    [(seq, body)] = run_sql(place.db, "SELECT seq, body FROM audit_log WHERE kind = 'checkpoint'")
    record = json.loads(body)
    signature = bytearray(record["signature"].encode())
    signature[5] = ord("A") if signature[5] != ord("A") else ord("B")
    record["signature"] = signature.decode()
    run_sql(place.db, "UPDATE audit_log SET body = ? WHERE seq = ?",
            json.dumps(record, sort_keys=True, separators=(",", ":")), seq)
    _attacker_rechain(place, seq)
    result = log.verify()
    assert not result.ok and result.first_bad_seq == seq and "signature" in result.reason


def test_checkpoint_resigned_with_another_key_is_caught(place):
    log = _filled(place, n=6, every=4)
    # The attacker signs with a key of their own: valid signature, but not the organisation's key.
    forged = AuditLog(place.folder / "other.db", key_path=place.folder / "attacker.key", checkpoint_every=1)
    forged.append("chat", {})
    forged_cp = forged.query(kind="checkpoint")[0].record
    [(seq, body)] = run_sql(place.db, "SELECT seq, body FROM audit_log WHERE kind = 'checkpoint'")
    record = json.loads(body)
    record["public_key"] = forged_cp["public_key"]
    run_sql(place.db, "UPDATE audit_log SET body = ? WHERE seq = ?",
            json.dumps(record, sort_keys=True, separators=(",", ":")), seq)
    _attacker_rechain(place, seq)
    result = log.verify()
    assert not result.ok and "unknown key" in result.reason


def test_key_file_is_private(place):
    _filled(place, n=1)
    mode = stat.S_IMODE(os.stat(place.folder / "signing.key").st_mode)
    assert mode == 0o600


def test_prune_keeps_the_rest_verifiable(place):
    log = _filled(place, n=6, every=4)
    cut_before = log.get(4).ts  # records 1-3 are strictly older
    result = log.prune(cut_before, actor="admin")
    assert result.deleted == 3 and result.anchor_seq == 3
    assert log.get(2) is None and log.get(4) is not None
    after = log.verify()
    assert after.ok, after.reason
    assert log.query(kind="audit.prune")[0].record["deleted"] == 3
    # Deleting one more old record by hand is still caught after the cut.
    _sql(place, ("DELETE FROM audit_log WHERE seq = 4",))
    assert log.verify().first_bad_seq == 4


def test_prune_refuses_a_tampered_log(place):
    log = _filled(place)
    _sql(place, ("DELETE FROM audit_log WHERE seq = 2",))
    with pytest.raises(AuditError, match="fails verification"):
        log.prune("2100-01-01", actor="admin")


def test_export_is_json_lines_with_hashes(place):
    log = _filled(place, n=3)
    buffer = io.StringIO()
    assert log.export(buffer) == 3
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3]
    assert lines[1]["prev"] == lines[0]["hash"]
    assert lines[2]["record"]["prompt"] == "質問2"


def _append_many(path, key_path, name, count):
    log = AuditLog(path, key_path=key_path, checkpoint_every=5)
    for i in range(count):
        log.append("chat", {"principal": name, "i": i})
    log.close()


def test_concurrent_processes_append_one_unbroken_chain(place):
    path, key_path = place.db, place.folder / "signing.key"
    AuditLog(path, key_path=key_path).close()
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_append_many, args=(path, key_path, f"p{n}", 15)) for n in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert all(w.exitcode == 0 for w in workers)
    log = AuditLog(path, key_path=key_path, checkpoint_every=5)
    result = log.verify()
    assert result.ok, result.reason
    assert len(log.query(kind="chat", limit=1000)) == 30


def test_concurrent_threads_share_commits_and_form_one_chain(place):
    # 32 threads appending at once: group commit takes several appends per transaction, every
    # caller gets its own record back, durable, and the chain (with its checkpoints) verifies.
    import threading

    log = AuditLog(place.db, key_path=place.folder / "signing.key", checkpoint_every=7)
    got: dict[str, int] = {}
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(25):
            entry = log.append("chat", {"principal": f"t{n}", "i": i})
            with lock:
                got[f"t{n}/{i}"] = entry.seq

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 800 and len(set(got.values())) == 800
    assert log.batches < 800  # appends shared transactions
    for name, seq in list(got.items())[::97]:
        entry = AuditLog(place.db).get(seq)  # another handle: committed, not just in memory
        assert (entry.record["principal"], entry.record["i"]) == tuple([name.split("/")[0], int(name.split("/")[1])])
    result = log.verify()
    assert result.ok and result.checked == 800 + result.checkpoints and result.checkpoints >= 100


def test_a_failing_append_fails_alone_in_its_batch(place):
    import threading

    log = AuditLog(place.db, key_path=place.folder / "signing.key", checkpoint_every=3)
    outcomes: list[str] = []
    lock = threading.Lock()

    def refuse(conn, entry):
        raise RuntimeError("the review queue refused")

    def worker(n: int) -> None:
        for i in range(20):
            try:
                log.append_with("chat", {"principal": f"t{n}", "i": i}, refuse if i % 5 == 0 else None)
                outcome = "ok"
            except RuntimeError:
                outcome = "failed"
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("failed") == 32 and outcomes.count("ok") == 128
    records = log.query(kind="chat", limit=1000)
    assert len(records) == 128 and all(r.record["i"] % 5 for r in records)  # no trace of a failed append
    assert log.verify().ok


def test_keyed_hash_finds_records_without_storing_the_value(place):
    log = _open(place)
    log.append("chat", {"principal": "u", "masked_values": [log.keyed_hash("123456789018")]})
    log.append("chat", {"principal": "u", "masked_values": [log.keyed_hash("999999999999")]})
    assert [e.seq for e in log.find_value("123456789018")] == [1]
    stored = "".join(body for (body,) in run_sql(place.db, "SELECT body FROM audit_log"))
    assert "123456789018" not in stored
    if isinstance(place.db, Path):
        assert b"123456789018" not in place.db.read_bytes()


def test_verifying_without_the_key_file_creates_no_key_and_still_checks_the_chain(place):
    log = _filled(place, n=6, every=4)
    trusted = log.trusted_public_key()
    copy = AuditLog(place.db, key_path=place.folder / "elsewhere.key", checkpoint_every=4)
    assert copy.verify().ok and not (place.folder / "elsewhere.key").exists()
    assert copy.verify(public_key=trusted).ok
    _sql(place, ("DELETE FROM audit_log WHERE seq = 2",))
    assert copy.verify(public_key=trusted).first_bad_seq == 2


def test_export_verifies_offline_and_catches_an_edit(place):
    from sekisho.audit.log import verify_export

    log = _filled(place, n=9, every=4)
    log.prune(log.get(3).ts, actor="root")
    buffer = io.StringIO()
    log.export(buffer)
    lines = buffer.getvalue().splitlines()
    assert json.loads(lines[0])["anchor"]["seq"] == 2
    trusted = log.trusted_public_key()
    result = verify_export(lines, public_key=trusted, checkpoint_every=4)
    assert result.ok and result.head_seq == log.head()[0]
    edited = [line.replace("回答5", "回答X") for line in lines]
    edited_seq = next(json.loads(line)["seq"] for line in lines if "回答5" in line)
    assert verify_export(edited, public_key=trusted, checkpoint_every=4).first_bad_seq == edited_seq
    assert not verify_export(lines[1:], public_key=trusted, checkpoint_every=4).ok  # anchor dropped


@pytest.mark.parametrize(("given", "expected"), [
    ("2026-04-01", "2026-04-01T00:00:00.000000Z"),
    ("令和8年4月1日", "2026-04-01T00:00:00.000000Z"),
    ("R8.4.1", "2026-04-01T00:00:00.000000Z"),
    ("２０２６年４月１日", "2026-04-01T00:00:00.000000Z"),
    ("2026-04-01T09:00:00+09:00", "2026-04-01T00:00:00.000000Z"),
])
def test_prune_dates_in_japanese_and_iso_forms(given, expected):
    from sekisho.audit.log import _timestamp

    assert _timestamp(given) == expected


def test_prune_rejects_a_non_date(place):
    with pytest.raises(AuditError, match="not a date"):
        _filled(place, n=1).prune("平成32年2月30日", actor="root")


def test_truncated_tail_is_caught_by_the_witness_beside_the_key(place):
    log = _filled(place, n=12, every=4)  # data 1-4, 6-9, 11-14; checkpoints 5, 10, 15
    assert log.verify().ok
    _sql(place, ("DELETE FROM audit_log WHERE seq >= 13",))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 13 and "deleted" in result.reason


def test_witness_only_ever_moves_forward(place):
    log = _filled(place, n=8, every=4)
    witness = json.loads((place.folder / "signing.key.witness").read_text())
    assert witness == {"seq": 10, "hash": log.get(10).hash}
    other = AuditLog(place.db, key_path=place.folder / "signing.key", checkpoint_every=4)
    other._write_witness(5, log.get(5).hash)  # a slower process reporting an older checkpoint
    assert json.loads((place.folder / "signing.key.witness").read_text())["seq"] == 10

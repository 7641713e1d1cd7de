"""The audit log catches every kind of tampering done with raw SQL on its file, names the first bad
record, and survives retention and concurrent writers."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import sqlite3
import stat

import pytest

from sekisho.audit.log import AuditError, AuditLog


def _open(tmp_path, every=100):
    return AuditLog(tmp_path / "audit.db", key_path=tmp_path / "signing.key", checkpoint_every=every)


def _filled(tmp_path, n=8, every=100):
    log = _open(tmp_path, every)
    for i in range(n):
        log.append("chat", {"principal": f"user{i % 2}", "prompt": f"質問{i}", "output": f"回答{i}"})
    return log


def _sql(tmp_path, *statements):
    conn = sqlite3.connect(tmp_path / "audit.db")
    for statement, *args in statements:
        conn.execute(statement, *args)
    conn.commit()
    conn.close()


def _attacker_rechain(tmp_path, start_seq):
    """What someone with write access but no signing key does after an edit: recompute every hash
    from `start_seq` on so that each record links again (the documented hash: sha256 of the
    canonical [seq, ts, kind, prev] header, a newline, and the stored body)."""
    conn = sqlite3.connect(tmp_path / "audit.db")
    rows = conn.execute("SELECT seq, ts, kind, body FROM audit_log ORDER BY seq").fetchall()
    prev = "0" * 64
    for seq, ts, kind, body in rows:
        if seq >= start_seq:
            header = json.dumps([seq, ts, kind, prev], separators=(",", ":"), ensure_ascii=False).encode()
            digest = hashlib.sha256(header + b"\n" + body.encode()).hexdigest()
            conn.execute("UPDATE audit_log SET prev = ?, hash = ? WHERE seq = ?", (prev, digest, seq))
        prev = conn.execute("SELECT hash FROM audit_log WHERE seq = ?", (seq,)).fetchone()[0]
    conn.commit()
    conn.close()


def test_untouched_log_verifies_and_records_read_back(tmp_path):
    log = _filled(tmp_path)
    result = log.verify()
    assert result.ok and result.first_bad_seq is None
    assert result.checked == 8 and result.head_seq == 8
    assert log.get(3).record == {"principal": "user0", "prompt": "質問2", "output": "回答2"}
    assert [e.seq for e in log.query(principal="user1")] == [8, 6, 4, 2]


def test_edited_record_is_named(tmp_path):
    log = _filled(tmp_path)
    _sql(tmp_path, ("UPDATE audit_log SET body = replace(body, '回答4', '回答X') WHERE seq = 5",))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 5
    assert "altered" in result.reason


def test_edited_timestamp_is_caught(tmp_path):
    log = _filled(tmp_path)
    _sql(tmp_path, ("UPDATE audit_log SET ts = '2020-01-01T00:00:00.000000Z' WHERE seq = 2",))
    assert log.verify().first_bad_seq == 2


def test_deleted_record_is_named(tmp_path):
    log = _filled(tmp_path)
    _sql(tmp_path, ("DELETE FROM audit_log WHERE seq = 4",))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 4
    assert "missing" in result.reason


def test_reordered_records_are_caught(tmp_path):
    log = _filled(tmp_path)
    _sql(tmp_path,
         ("UPDATE audit_log SET seq = -1 WHERE seq = 3",),
         ("UPDATE audit_log SET seq = 3 WHERE seq = 4",),
         ("UPDATE audit_log SET seq = 4 WHERE seq = -1",))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 3


def test_inserted_record_is_caught(tmp_path):
    log = _filled(tmp_path)
    head_hash = log.head()[1]
    # A forged record appended at the end with a made-up hash.
    _sql(tmp_path, ("INSERT INTO audit_log(seq, ts, kind, body, prev, hash) VALUES (9, '2026-01-01T00:00:00.000000Z', "
                    "'chat', '{}', ?, ?)", (head_hash, "f" * 64)))
    assert log.verify().first_bad_seq == 9


def test_inserted_record_with_renumbering_is_caught(tmp_path):
    log = _filled(tmp_path)
    _sql(tmp_path,
         ("UPDATE audit_log SET seq = seq + 100 WHERE seq >= 5",),
         ("UPDATE audit_log SET seq = seq - 99 WHERE seq >= 105",),
         ("INSERT INTO audit_log(seq, ts, kind, body, prev, hash) SELECT 5, ts, kind, '{\"forged\":true}', hash, hash "
          "FROM audit_log WHERE seq = 4",))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 5


def test_whole_chain_rewrite_is_caught_by_signed_checkpoint(tmp_path):
    log = _filled(tmp_path, n=12, every=4)
    assert log.verify().checkpoints == 3
    _sql(tmp_path, ("UPDATE audit_log SET body = replace(body, '回答1', '回答X') WHERE seq = 2",))
    _attacker_rechain(tmp_path, 2)
    result = log.verify()
    assert not result.ok
    # The rewrite is confined to the records before the first checkpoint; it names where they start.
    assert result.first_bad_seq == 1 and "checkpoint 5" in result.reason


def test_rewrite_without_checkpoints_is_caught(tmp_path):
    log = _filled(tmp_path, n=12, every=4)
    _sql(tmp_path, ("DELETE FROM audit_log WHERE kind = 'checkpoint'",))
    conn = sqlite3.connect(tmp_path / "audit.db")
    rows = conn.execute("SELECT seq FROM audit_log ORDER BY seq").fetchall()
    for new, (old,) in enumerate(rows, start=1):
        conn.execute("UPDATE audit_log SET seq = ? WHERE seq = ?", (new, old))
    conn.commit()
    conn.close()
    _attacker_rechain(tmp_path, 1)
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 5 and "no signed checkpoint" in result.reason


def test_tampered_checkpoint_signature_is_caught(tmp_path):
    log = _filled(tmp_path, n=6, every=4)
    conn = sqlite3.connect(tmp_path / "audit.db")
    seq, body = conn.execute("SELECT seq, body FROM audit_log WHERE kind = 'checkpoint'").fetchone()
    record = json.loads(body)
    signature = bytearray(record["signature"].encode())
    signature[5] = ord("A") if signature[5] != ord("A") else ord("B")
    record["signature"] = signature.decode()
    conn.execute("UPDATE audit_log SET body = ? WHERE seq = ?",
                 (json.dumps(record, sort_keys=True, separators=(",", ":")), seq))
    conn.commit()
    conn.close()
    _attacker_rechain(tmp_path, seq)
    result = log.verify()
    assert not result.ok and result.first_bad_seq == seq and "signature" in result.reason


def test_checkpoint_resigned_with_another_key_is_caught(tmp_path):
    log = _filled(tmp_path, n=6, every=4)
    # The attacker signs with a key of their own: valid signature, but not the organisation's key.
    forged = AuditLog(tmp_path / "other.db", key_path=tmp_path / "attacker.key", checkpoint_every=1)
    forged.append("chat", {})
    forged_cp = forged.query(kind="checkpoint")[0].record
    conn = sqlite3.connect(tmp_path / "audit.db")
    seq, body = conn.execute("SELECT seq, body FROM audit_log WHERE kind = 'checkpoint'").fetchone()
    record = json.loads(body)
    record["public_key"] = forged_cp["public_key"]
    conn.execute("UPDATE audit_log SET body = ? WHERE seq = ?",
                 (json.dumps(record, sort_keys=True, separators=(",", ":")), seq))
    conn.commit()
    conn.close()
    _attacker_rechain(tmp_path, seq)
    result = log.verify()
    assert not result.ok and "unknown key" in result.reason


def test_key_file_is_private(tmp_path):
    _filled(tmp_path, n=1)
    mode = stat.S_IMODE(os.stat(tmp_path / "signing.key").st_mode)
    assert mode == 0o600


def test_prune_keeps_the_rest_verifiable(tmp_path):
    log = _filled(tmp_path, n=6, every=4)
    cut_before = log.get(4).ts  # records 1-3 are strictly older
    result = log.prune(cut_before, actor="admin")
    assert result.deleted == 3 and result.anchor_seq == 3
    assert log.get(2) is None and log.get(4) is not None
    after = log.verify()
    assert after.ok, after.reason
    assert log.query(kind="audit.prune")[0].record["deleted"] == 3
    # Deleting one more old record by hand is still caught after the cut.
    _sql(tmp_path, ("DELETE FROM audit_log WHERE seq = 4",))
    assert log.verify().first_bad_seq == 4


def test_prune_refuses_a_tampered_log(tmp_path):
    log = _filled(tmp_path)
    _sql(tmp_path, ("DELETE FROM audit_log WHERE seq = 2",))
    with pytest.raises(AuditError, match="fails verification"):
        log.prune("2100-01-01", actor="admin")


def test_export_is_json_lines_with_hashes(tmp_path):
    log = _filled(tmp_path, n=3)
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


def test_concurrent_processes_append_one_unbroken_chain(tmp_path):
    path, key_path = tmp_path / "audit.db", tmp_path / "signing.key"
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


def test_concurrent_threads_share_commits_and_form_one_chain(tmp_path):
    # 32 threads appending at once: group commit takes several appends per transaction, every
    # caller gets its own record back, durable, and the chain (with its checkpoints) verifies.
    import threading

    log = AuditLog(tmp_path / "audit.db", key_path=tmp_path / "signing.key", checkpoint_every=7)
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
        entry = AuditLog(tmp_path / "audit.db").get(seq)  # another handle: committed, not just in memory
        assert (entry.record["principal"], entry.record["i"]) == tuple([name.split("/")[0], int(name.split("/")[1])])
    result = log.verify()
    assert result.ok and result.checked == 800 + result.checkpoints and result.checkpoints >= 100


def test_a_failing_append_fails_alone_in_its_batch(tmp_path):
    import threading

    log = AuditLog(tmp_path / "audit.db", key_path=tmp_path / "signing.key", checkpoint_every=3)
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


def test_keyed_hash_finds_records_without_storing_the_value(tmp_path):
    log = _open(tmp_path)
    log.append("chat", {"principal": "u", "masked_values": [log.keyed_hash("123456789018")]})
    log.append("chat", {"principal": "u", "masked_values": [log.keyed_hash("999999999999")]})
    assert [e.seq for e in log.find_value("123456789018")] == [1]
    assert b"123456789018" not in (tmp_path / "audit.db").read_bytes()


def test_verifying_without_the_key_file_creates_no_key_and_still_checks_the_chain(tmp_path):
    log = _filled(tmp_path, n=6, every=4)
    trusted = log.trusted_public_key()
    copy = AuditLog(tmp_path / "audit.db", key_path=tmp_path / "elsewhere.key", checkpoint_every=4)
    assert copy.verify().ok and not (tmp_path / "elsewhere.key").exists()
    assert copy.verify(public_key=trusted).ok
    _sql(tmp_path, ("DELETE FROM audit_log WHERE seq = 2",))
    assert copy.verify(public_key=trusted).first_bad_seq == 2


def test_export_verifies_offline_and_catches_an_edit(tmp_path):
    from sekisho.audit.log import verify_export

    log = _filled(tmp_path, n=9, every=4)
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


def test_prune_rejects_a_non_date(tmp_path):
    with pytest.raises(AuditError, match="not a date"):
        _filled(tmp_path, n=1).prune("平成32年2月30日", actor="root")


def test_truncated_tail_is_caught_by_the_witness_beside_the_key(tmp_path):
    log = _filled(tmp_path, n=12, every=4)  # data 1-4, 6-9, 11-14; checkpoints 5, 10, 15
    assert log.verify().ok
    _sql(tmp_path, ("DELETE FROM audit_log WHERE seq >= 13",))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 13 and "deleted" in result.reason


def test_witness_only_ever_moves_forward(tmp_path):
    log = _filled(tmp_path, n=8, every=4)
    witness = json.loads((tmp_path / "signing.key.witness").read_text())
    assert witness == {"seq": 10, "hash": log.get(10).hash}
    other = AuditLog(tmp_path / "audit.db", key_path=tmp_path / "signing.key", checkpoint_every=4)
    other._write_witness(5, log.get(5).hash)  # a slower process reporting an older checkpoint
    assert json.loads((tmp_path / "signing.key.witness").read_text())["seq"] == 10

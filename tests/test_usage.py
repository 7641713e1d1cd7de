"""The counting rules of the usage report, on audit records written with known times and contents
(the scripted end-to-end day is tests/test_server_usage.py): days in the organisation's time zone,
energy, refusals by role against the guard's, feedback (the last rating per person, attributed to
the answer's period), the latency sketch against exact order statistics, and one-line errors."""

from __future__ import annotations

import math
import random
from datetime import date

import pytest

from sekisho.audit.log import AuditLog
from sekisho.audit.usage import UsageQuery, UsageQueryError, _Sketch, usage_report
from sekisho.errors import Forbidden
from sekisho.identity import Principal, Role

ADMIN = Principal("key:a:admin", Role.ADMIN, ("*",))


@pytest.fixture
def log(tmp_path, monkeypatch):
    """An audit log whose records are stamped with the times the test appends them at."""
    opened = AuditLog(tmp_path / "audit.db", key_path=tmp_path / "signing.key")
    clock = {"now": "2026-12-01T00:00:00.000000Z"}
    monkeypatch.setattr("sekisho.audit.log.utc_now", lambda: clock["now"])

    def append(ts: str, kind: str, **record) -> int:
        clock["now"] = ts
        return opened.append(kind, record).seq

    opened.at = append
    yield opened
    opened.close()


def request(status: str = "ok", **extra) -> dict:
    return {"principal": "key:u:alice", "role": "user", "tags": ["hr"], "status": status,
            "backend": {"requested": "extractive", "used": "extractive"}, "findings": [],
            "tokens": {"prompt": 10, "completion": 5}, "duration_s": 0.5, **extra}


def query(**kwargs) -> UsageQuery:
    kwargs.setdefault("timezone", "Asia/Tokyo")
    return UsageQuery(**kwargs)


def test_days_are_counted_in_the_organisations_time_zone(log):
    log.at("2026-12-06T14:59:59.000000Z", "ask", **request())  # 23:59:59 in Tokyo, the 6th
    log.at("2026-12-06T15:00:00.000000Z", "ask", **request())  # midnight in Tokyo: the 7th
    tokyo = usage_report(log, query(by=("day",)), viewer=ADMIN)
    assert [(r.key, r.figures.requests) for r in tokyo.rows] == [(("2026-12-06",), 1), (("2026-12-07",), 1)]
    utc = usage_report(log, query(by=("day",), timezone="UTC"), viewer=ADMIN)
    assert [(r.key, r.figures.requests) for r in utc.rows] == [(("2026-12-06",), 2)]
    # A period of whole days in the zone, both ends included.
    only_7th = usage_report(log, query(since=date(2026, 12, 7), until=date(2026, 12, 7)), viewer=ADMIN)
    assert only_7th.total.requests == 1
    only_6th = usage_report(log, query(until=date(2026, 12, 6)), viewer=ADMIN)
    assert only_6th.total.requests == 1


def test_the_log_is_walked_by_period_a_page_at_a_time_even_after_the_clock_was_set_back(log):
    stamps = ["2026-12-01T00:00:00.000000Z", "2026-12-02T00:00:00.000000Z", "2026-12-03T00:00:00.000000Z",
              "2026-12-01T12:00:00.000000Z",  # the clock was set back
              "2026-12-02T12:00:00.000000Z", "2026-12-04T00:00:00.000000Z", "2026-11-30T00:00:00.000000Z"]
    kinds = ["ask", "chat", "feedback", "ask", "search", "chat", "ask"]
    seqs = [log.at(ts, kind, **request()) for ts, kind in zip(stamps, kinds)]
    # Record 3 lies between the period's first and last records but after its end.
    since, until = "2026-12-01T06:00:00Z", "2026-12-02T18:00:00Z"
    inside = [seq for seq, ts in zip(seqs, stamps) if "2026-12-01T06" <= ts < "2026-12-02T18"]
    assert inside == seqs[1:2] + seqs[3:5]
    for wanted in (("ask", "chat"), ("ask",), ()):
        expected = [seq for seq, kind in zip(seqs, kinds) if seq in inside and (not wanted or kind in wanted)]
        for page in (1, 2, 1000):
            got = [e.seq for e in log.records(kinds=wanted, since=since, until=until, page=page)]
            assert got == expected, (wanted, page)
    assert [e.seq for e in log.records(since="2026-12-05")] == []


def test_energy_refusals_and_latency_follow_their_rules(log):
    at = "2026-12-07T01:00:00.000000Z"
    log.at(at, "ask", **request(energy={"joules": 1.5, "source": "rapl", "label": "RAPL"}))
    log.at(at, "chat", **request(energy={"joules": 2.25, "source": "estimate", "label": "CPU time"}, duration_s=1.5))
    log.at(at, "chat", **request(energy={"joules": None, "source": "remote", "label": "remote server"}))
    log.at(at, "ask", **request("blocked", reason="role:auditor", tokens=None, duration_s=0.001))
    log.at(at, "ask", **request("blocked", reason="blocked:MY_NUMBER", tokens=None, duration_s=0.001,
                                findings=[{"entity": "MY_NUMBER", "action": "block", "placeholder": "<マイナンバー_1>"}]))
    log.at(at, "chat", **request("error", tokens=None, duration_s=9.0))
    log.at(at, "chat", **request("cancelled", duration_s=9.0))
    log.at(at, "search", principal="key:u:alice", query_sha256="0" * 64)  # not a governed request
    total = usage_report(log, query(), viewer=ADMIN).total
    assert (total.requests, total.energy_j, total.energy_unmeasured) == (7, 3.75, 5)
    assert (total.refused, total.guard_blocked, total.errors, total.cancelled) == (2, 1, 1, 1)
    assert (total.prompt_tokens, total.completion_tokens) == (40, 20)
    # Latency of the requests that reached a model and concluded: 0.5, 1.5, 0.5.
    assert total.latency_p50_s == pytest.approx(0.5, rel=0.01)
    assert total.latency_p95_s == pytest.approx(1.5, rel=0.01)


def test_records_from_before_tags_were_recorded_count_as_untagged(log):
    old = request()
    del old["tags"]
    log.at("2026-12-07T01:00:00.000000Z", "ask", **old)
    log.at("2026-12-07T01:00:00.000000Z", "ask", **request(tags=["finance", "hr"]))
    rows = usage_report(log, query(by=("tag",)), viewer=ADMIN).rows
    assert [(r.key, r.figures.requests) for r in rows] == [(("",), 1), (("finance",), 1), (("hr",), 1)]


def test_feedback_counts_the_last_rating_per_person_for_the_answers_period(log):
    early = log.at("2026-11-30T01:00:00.000000Z", "ask", **request())
    answer = log.at("2026-12-07T01:00:00.000000Z", "ask", **request())
    log.at("2026-12-07T01:01:00.000000Z", "feedback", principal="key:u:alice", audit_seq=early, rating=-1, reason="x")
    log.at("2026-12-07T01:02:00.000000Z", "feedback", principal="key:u:alice", audit_seq=answer, rating=-1, reason="遅い")
    log.at("2026-12-07T01:03:00.000000Z", "feedback", principal="key:u:alice", audit_seq=answer, rating=1, reason="")
    log.at("2026-12-07T01:04:00.000000Z", "feedback", principal="key:u:bob", audit_seq=answer, rating=-1,
           reason="出典が古い")
    # Given after the period, for an answer inside it: counted.
    log.at("2026-12-09T01:00:00.000000Z", "feedback", principal="key:u:carol", audit_seq=answer, rating=-1, reason="")
    report = usage_report(log, query(since=date(2026, 12, 7), until=date(2026, 12, 7)), viewer=ADMIN)
    assert (report.total.requests, report.total.thumbs_up, report.total.thumbs_down) == (1, 1, 2)
    assert [(r.audit_seq, r.reason) for r in report.reasons] == [(answer, "出典が古い")]
    auditor = Principal("key:x:auditor", Role.AUDITOR)
    assert usage_report(log, report.query, viewer=auditor).reasons is None


def test_real_names_only_for_admins_and_auditors_and_audited(log):
    log.at("2026-12-07T01:00:00.000000Z", "ask", **request())
    named = query(by=("user",), names=True)
    with pytest.raises(Forbidden, match="admins and auditors only"):
        usage_report(log, named, viewer=Principal("key:u:alice", Role.USER))
    assert log.query(kind="usage.names") == []
    rows = usage_report(log, named, viewer=Principal("key:x:auditor", Role.AUDITOR)).rows
    assert [r.key for r in rows] == [("key:u:alice",)]
    assert [e.record["principal"] for e in log.query(kind="usage.names")] == ["key:x:auditor"]


@pytest.mark.parametrize("shape", ["lognormal", "equal", "with zeros"])
def test_the_latency_sketch_is_within_one_percent_of_the_exact_quantile(shape):
    rng = random.Random(7)
    values = {"lognormal": [rng.lognormvariate(-1.0, 1.2) for _ in range(5000)],
              "equal": [0.25] * 100,
              "with zeros": [0.0] * 30 + [rng.uniform(0.001, 3.0) for _ in range(70)]}[shape]
    sketch = _Sketch()
    for v in values:
        sketch.add(_Sketch.index_of(round(v, 4)))  # as the audit log keeps durations
    exact = sorted(round(v, 4) for v in values)
    for q in (0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0):
        want = exact[max(0, math.ceil(q * len(exact)) - 1)]
        assert sketch.quantile(q) == pytest.approx(want, rel=0.0101, abs=1e-4), q
    assert len(sketch.buckets) < 600


@pytest.mark.parametrize(("since", "until", "by", "message"), [
    ("2026-13-01", None, "day", "since: '2026-13-01' is not a date (e.g. 2026-12-01, 令和8年12月1日)"),
    ("2026-12-08", "2026-12-01", "day", "since 2026-12-08 is after until 2026-12-01"),
    (None, None, "day,colour", "by: unknown dimension 'colour' (choose from day, app, model, role, tag, user)"),
    (None, None, "app,app", "by: a dimension is named twice (app,app)"),
])
def test_a_query_that_cannot_be_answered_says_why_in_one_line(since, until, by, message):
    with pytest.raises(UsageQueryError) as caught:
        UsageQuery.parse(since=since, until=until, by=by, timezone="Asia/Tokyo")
    assert str(caught.value) == message


def test_japanese_dates_are_read():
    parsed = UsageQuery.parse(since="令和8年12月1日", until="2026年12月7日", by="app, model", timezone="Asia/Tokyo")
    assert (parsed.since, parsed.until, parsed.by) == (date(2026, 12, 1), date(2026, 12, 7), ("app", "model"))

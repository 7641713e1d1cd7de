"""The review queue: held outputs are released only after a reviewer's decision, only reviewers and
admins decide, nobody decides their own request, and every step lands in the audit chain; on an
SQLite file and on PostgreSQL."""

from __future__ import annotations

import pytest

from sekisho.audit.log import AuditLog
from sekisho.audit.review import ReviewError, ReviewPermissionError, ReviewQueue, ReviewStatus
from sekisho.identity import Principal, Role

ALICE = Principal("alice", Role.USER)
REVIEWER = Principal("rin", Role.REVIEWER)
ADMIN = Principal("root", Role.ADMIN)
AUDITOR = Principal("kansa", Role.AUDITOR)


def hold(queue, output, reasons, requester, audit_seq):
    """A held output as the request path leaves it: queued in the transaction of its audit record."""
    with queue.audit.transaction() as conn:
        return queue.hold_in(conn, output, reasons, requester, audit_seq)


@pytest.fixture()
def queue(database_target, tmp_path):
    log = AuditLog(database_target, key_path=tmp_path / "k.key")
    seq = log.append("chat", {"principal": "alice", "output": "対外向けの回答"}).seq
    q = ReviewQueue(log)
    q.held_id = hold(q, "対外向けの回答", ["external_use"], ALICE, seq)
    return q


def test_held_output_is_listed_and_not_releasable(queue):
    [item] = queue.list("pending")
    assert item.id == queue.held_id and item.reasons == ["external_use"] and item.requester == "alice"
    with pytest.raises(ReviewError, match="awaiting review"):
        queue.release(queue.held_id, ALICE)


def test_approved_output_is_released_to_the_requester_only(queue):
    queue.approve(queue.held_id, REVIEWER, note="問題なし")
    with pytest.raises(ReviewPermissionError, match="belongs to alice"):
        queue.release(queue.held_id, Principal("bob", Role.USER))
    item = queue.release(queue.held_id, ALICE)
    assert item.final_text == "対外向けの回答" and item.status == ReviewStatus.APPROVED
    kinds = [e.kind for e in queue.audit.query(newest_first=False)]
    assert kinds == ["chat", "review.hold", "review.decision", "review.release"]
    assert queue.audit.verify().ok


def test_edit_replaces_the_released_text(queue):
    queue.edit(queue.held_id, ADMIN, "修正後の回答", reason="表現を修正")
    assert queue.release(queue.held_id, ALICE).final_text == "修正後の回答"
    decision = queue.audit.query(kind="review.decision")[0].record
    assert decision["decision"] == "edited" and decision["edited_text"] == "修正後の回答"


def test_rejected_output_is_never_released(queue):
    queue.reject(queue.held_id, REVIEWER, reason="根拠不明")
    with pytest.raises(ReviewError, match="rejected"):
        queue.release(queue.held_id, ALICE)
    with pytest.raises(ReviewError, match="already rejected"):
        queue.approve(queue.held_id, ADMIN)


@pytest.mark.parametrize("who", [ALICE, AUDITOR])
def test_only_reviewers_and_admins_decide(queue, who):
    with pytest.raises(ReviewPermissionError, match="only reviewer or admin"):
        queue.approve(queue.held_id, who)
    assert queue.get(queue.held_id).status == ReviewStatus.PENDING
    assert queue.audit.query(kind="review.decision") == []


def test_nobody_approves_their_own_request(database_target):
    log = AuditLog(database_target)
    q = ReviewQueue(log)
    rid = hold(q, "text", ["role"], REVIEWER, 0)
    with pytest.raises(ReviewPermissionError, match="cannot decide"):
        q.approve(rid, REVIEWER)


def test_unknown_review_is_a_clear_error(queue):
    with pytest.raises(ReviewError, match="review 999 does not exist"):
        queue.get(999)


def test_prune_removes_decided_reviews_with_their_requests(queue):
    pending_seq = queue.audit.append("chat", {"principal": "alice"}).seq
    pending = hold(queue, "未決", ["external_use"], ALICE, pending_seq)
    queue.approve(queue.held_id, REVIEWER)
    cutoff = queue.audit.append("marker", {}).ts
    queue.audit.append("chat", {"principal": "alice"})
    queue.audit.prune(cutoff, actor="root")
    assert [item.id for item in queue.list(None)] == [pending]
    assert queue.audit.verify().ok


def test_a_review_is_decided_once_among_concurrent_deciders(queue):
    # Eight reviewers (threads, each its own queue handle: another process or server) approve at once.
    import threading

    outcomes: list[str] = []
    lock = threading.Lock()

    def decide(n: int) -> None:
        other = ReviewQueue(AuditLog(queue.audit.db))
        try:
            other.approve(queue.held_id, Principal(f"rin{n}", Role.REVIEWER), note=f"#{n}")
            outcome = "approved"
        except ReviewError:
            outcome = "refused"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=decide, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["approved"] + ["refused"] * 7
    assert len(queue.audit.query(kind="review.decision")) == 1 and queue.audit.verify().ok

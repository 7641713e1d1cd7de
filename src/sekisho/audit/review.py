"""The review queue: outputs the policy holds until a reviewer approves, edits or rejects them.

Held items live in the audit database (table `reviews`); the table is the mutable workflow state,
while every hold, decision and release is also appended to the hash chain in the same transaction,
so the history cannot be rewritten. Held text is stored as audited: personal data replaced by
placeholders (the request path restores them for the requester on release, while it still holds the
request's mapping in memory).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sekisho.audit.log import AuditLog, utc_now
from sekisho.errors import Forbidden, NotFound, SekishoError
from sekisho.identity import Principal, Role

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reviews (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created    TEXT NOT NULL,
    status     TEXT NOT NULL,
    requester  TEXT NOT NULL,
    audit_seq  INTEGER NOT NULL,
    reasons    TEXT NOT NULL,
    output     TEXT NOT NULL,
    final_text TEXT,
    reviewer   TEXT,
    note       TEXT,
    decided    TEXT
)
"""

DECIDING_ROLES = frozenset({Role.REVIEWER, Role.ADMIN})


class ReviewStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    EDITED = "edited"
    REJECTED = "rejected"


class ReviewError(SekishoError):
    """A review action cannot be done (already decided, not yet approved, no reason given)."""

    http_status = 409
    code = "review_conflict"


class ReviewNotFound(NotFound, ReviewError):
    """No review has this number."""


class ReviewPermissionError(Forbidden, ReviewError):
    """The principal's role may not take this review action."""


@dataclass(frozen=True)
class ReviewItem:
    id: int
    status: ReviewStatus
    created: str
    requester: str
    audit_seq: int
    reasons: list[str] = field(default_factory=list)
    output: str = ""  # the held output, as audited (placeholders instead of personal data)
    final_text: str | None = None  # what the requester receives once approved (edited or not)
    reviewer: str | None = None
    note: str | None = None
    decided: str | None = None

    @property
    def releasable(self) -> bool:
        return self.status in (ReviewStatus.APPROVED, ReviewStatus.EDITED)


class ReviewQueue:
    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit
        with audit.transaction() as conn:
            conn.execute(_SCHEMA)

    def hold_in(self, conn: Any, output: str, reasons: list[str], requester: Principal | str, audit_seq: int) -> int:
        """Hold inside the caller's audit transaction, so that the audited request and its queue
        item land together or not at all."""
        name = requester.name if isinstance(requester, Principal) else requester
        cursor = conn.execute(
            "INSERT INTO reviews(created, status, requester, audit_seq, reasons, output) VALUES (?, ?, ?, ?, ?, ?)",
            (utc_now(), ReviewStatus.PENDING, name, audit_seq, json.dumps(reasons, ensure_ascii=False), output))
        review_id = int(cursor.lastrowid)
        self.audit.append_in(conn, "review.hold", {"principal": name, "review_id": review_id,
                                                   "audit_seq": audit_seq, "reasons": reasons})
        return review_id

    def list(self, status: ReviewStatus | str | None = ReviewStatus.PENDING, *, limit: int = 100) -> list[ReviewItem]:
        sql, args = "SELECT * FROM reviews", []
        if status:
            sql += " WHERE status = ?"
            args.append(str(ReviewStatus(status)))
        sql += " ORDER BY id LIMIT ?"
        args.append(limit)
        return [self._item(row) for row in self.audit.read(sql, args)]

    def get(self, review_id: int) -> ReviewItem:
        rows = self.audit.read("SELECT * FROM reviews WHERE id = ?", [review_id])
        if not rows:
            raise ReviewNotFound(f"review {review_id} does not exist")
        return self._item(rows[0])

    def approve(self, review_id: int, reviewer: Principal, note: str = "") -> ReviewItem:
        return self._decide(review_id, reviewer, ReviewStatus.APPROVED, note=note)

    def edit(self, review_id: int, reviewer: Principal, new_text: str, reason: str) -> ReviewItem:
        if not new_text.strip():
            raise ReviewError(f"review {review_id}: the edited text is empty (reject it instead)")
        return self._decide(review_id, reviewer, ReviewStatus.EDITED, note=reason, new_text=new_text)

    def reject(self, review_id: int, reviewer: Principal, reason: str) -> ReviewItem:
        if not reason.strip():
            raise ReviewError(f"review {review_id}: a rejection needs a reason the requester can read")
        return self._decide(review_id, reviewer, ReviewStatus.REJECTED, note=reason)

    def release(self, review_id: int, requester: Principal) -> ReviewItem:
        """The approved (or edited) text, for the principal who asked, and only after a decision."""
        with self.audit.transaction() as conn:
            item = self._get_in(conn, review_id)
            if requester.name != item.requester:
                raise ReviewPermissionError(f"review {review_id} belongs to {item.requester}, not {requester.name}")
            if not item.releasable:
                state = "is still awaiting review" if item.status == ReviewStatus.PENDING else f"was {item.status}"
                raise ReviewError(f"review {review_id} {state}; its output cannot be released")
            self.audit.append_in(conn, "review.release", {"principal": requester.name, "review_id": review_id,
                                                          "audit_seq": item.audit_seq})
        return item

    def _decide(self, review_id: int, reviewer: Principal, status: ReviewStatus, *, note: str,
                new_text: str | None = None) -> ReviewItem:
        if reviewer.role not in DECIDING_ROLES:
            raise ReviewPermissionError(f"{reviewer.name} has role '{reviewer.role}'; only reviewer or admin "
                                        f"may approve, edit or reject held outputs")
        with self.audit.transaction() as conn:
            item = self._get_in(conn, review_id)
            if item.status != ReviewStatus.PENDING:
                raise ReviewError(f"review {review_id} was already {item.status} by {item.reviewer}")
            if reviewer.name == item.requester:
                # Four eyes: nobody approves their own output.
                raise ReviewPermissionError(f"{reviewer.name} asked for review {review_id} and cannot decide it")
            final = None if status == ReviewStatus.REJECTED else (new_text if new_text is not None else item.output)
            decided = utc_now()
            conn.execute("UPDATE reviews SET status = ?, final_text = ?, reviewer = ?, note = ?, decided = ? WHERE id = ?",
                         (status, final, reviewer.name, note, decided, review_id))
            record: dict[str, Any] = {"principal": reviewer.name, "role": str(reviewer.role), "review_id": review_id,
                                      "audit_seq": item.audit_seq, "decision": str(status), "note": note}
            if new_text is not None:
                record["edited_text"] = new_text
            self.audit.append_in(conn, "review.decision", record)
            return self._get_in(conn, review_id)

    def _get_in(self, conn: Any, review_id: int) -> ReviewItem:
        row = conn.execute("SELECT * FROM reviews WHERE id = ?", (review_id,)).fetchone()
        if row is None:
            raise ReviewNotFound(f"review {review_id} does not exist")
        return self._item(row)

    @staticmethod
    def _item(row: tuple[Any, ...]) -> ReviewItem:
        rid, created, status, requester, audit_seq, reasons, output, final_text, reviewer, note, decided = row
        return ReviewItem(id=rid, status=ReviewStatus(status), created=created, requester=requester,
                          audit_seq=audit_seq, reasons=json.loads(reasons), output=output, final_text=final_text,
                          reviewer=reviewer, note=note, decided=decided)

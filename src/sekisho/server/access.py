"""Who may read content. A document's text, and every text made from it (a prompt holding its
passages, an answer, a held output, a reviewer's edit or note), is shown only to a principal that
may see the document itself: admins, keys without tags for untagged documents, keys holding one
of its tags for tagged ones (security.can_see). Roles say what a key may do; tags say what it may
read, on every route that shows text.

Audit records: what a record drew on is its `sources` (each document with the tags it had when
the record was written; for records written before sources carried tags, the document's tags
now, and a document since deleted counts as one nobody but an admin may see). A record that
points at another one (`audit_seq`: a review decision, a release, a provenance export) drew on
what that one drew on. A principal that may see every document a record drew on reads it whole;
anyone else reads its metadata (who, when, which backend, which documents, findings, hashes) with
each content field replaced by

    {"withheld": "<why>", "sha256": "<sha256 of the field's canonical JSON>"}

so an auditor still sees that a text existed and can match it against a copy, without reading
it. An export line with withheld fields names them (`"withheld": [...]`): its record hash cannot
be recomputed from the line, so offline verification checks its place in the chain only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sekisho.audit.signing import canonical_json, sha256_hex
from sekisho.identity import Principal
from sekisho.server.security import can_see

# Fields of an audit record that hold text from documents or answers (everything else is metadata).
CONTENT_FIELDS = ("prompt", "output", "choices", "readings", "edited_text", "note")
# The tags of a document that no longer exists: only a principal that sees everything reads it.
_GONE = ("(削除済みの文書 / deleted document)",)


class ContentAccess:
    """Content visibility over one audit log and knowledge base, for one request (it remembers
    the records and documents it looked up)."""

    def __init__(self, audit: Any, document_tags: Callable[[str], tuple[str, ...] | None]) -> None:
        self._audit = audit
        self._document_tags = document_tags
        self._documents: dict[str, tuple[str, ...]] = {}
        self._records: dict[int, list[tuple[str, ...]]] = {}

    def drew_on(self, record: dict[str, Any]) -> list[tuple[str, ...]]:
        """The tags of every document `record` drew on, one tuple per document."""
        sources = record.get("sources")
        if sources is None and isinstance(record.get("audit_seq"), int):
            return self._of_record(record["audit_seq"])
        tags = []
        for source in sources or ():
            if not isinstance(source, dict) or not source.get("doc_id"):
                continue  # passages a client sent with its request: its own text
            recorded = source.get("tags")
            tags.append(tuple(recorded) if isinstance(recorded, list) else self._tags_now(source["doc_id"]))
        return tags

    def may_read(self, principal: Principal, record: dict[str, Any]) -> bool:
        return all(can_see(principal, tags) for tags in self.drew_on(record))

    def shown(self, principal: Principal, record: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """`record` as `principal` may read it, and the names of the fields withheld."""
        if self.may_read(principal, record):
            return record, []
        hidden = [f for f in CONTENT_FIELDS if f in record]
        why = "この記録が参照した文書の閲覧タグがありません / the key lacks the access tags of the documents this record drew on"
        shown = {**record, **{f: {"withheld": why, "sha256": sha256_hex(canonical_json(record[f]))} for f in hidden}}
        return shown, hidden

    def may_read_review(self, principal: Principal, item: Any) -> bool:
        """A held output drew on what its request drew on."""
        return all(can_see(principal, tags) for tags in self._of_record(item.audit_seq))

    def _of_record(self, seq: int) -> list[tuple[str, ...]]:
        if seq not in self._records:
            entry = self._audit.get(seq)
            if entry is None:  # pruned: what it drew on is no longer known
                self._records[seq] = [_GONE]
            else:
                # One level only: the record pointed at is a request, which names its own sources.
                record = entry.record or {}
                self._records[seq] = self.drew_on({k: v for k, v in record.items() if k != "audit_seq"})
        return self._records[seq]

    def _tags_now(self, doc_id: str) -> tuple[str, ...]:
        if doc_id not in self._documents:
            tags = self._document_tags(doc_id)
            self._documents[doc_id] = _GONE if tags is None else tags
        return self._documents[doc_id]

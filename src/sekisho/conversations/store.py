"""Conversations kept server-side, per principal, in the store's database (so they move to
PostgreSQL with everything else), and the feedback users give on answers.

A turn keeps what the user saw: the question as asked, the question retrieval was given (the
follow-up made standalone), the answer with masked values restored for its owner, its sources,
support verdict and audit record. Only the owner reads, renames, exports or deletes a
conversation; another principal asking for it gets "not found", never "not yours".
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sekisho.db import Database, Migrations
from sekisho.errors import InvalidInput, NotFound

CONVERSATION_MIGRATIONS = Migrations("conversations")
CONVERSATION_MIGRATIONS.sql("conversations_turns_feedback", """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        title TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX conversations_by_owner ON conversations(owner, updated_at);
    CREATE TABLE conversation_turns (
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        n INTEGER NOT NULL,
        question TEXT NOT NULL,
        standalone TEXT NOT NULL,
        answer TEXT NOT NULL,
        status TEXT NOT NULL,
        backend TEXT NOT NULL,
        audit_seq INTEGER,
        review_id INTEGER,
        details TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (conversation_id, n)
    );
    CREATE TABLE feedback (
        audit_seq INTEGER NOT NULL,
        principal TEXT NOT NULL,
        rating INTEGER NOT NULL,
        reason TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (audit_seq, principal)
    )
""")

TITLE_CHARS = 200
MAX_TURNS = 500


class ConversationNotFound(NotFound):
    """No conversation with this id belongs to the caller."""


@dataclass(frozen=True)
class Turn:
    n: int
    question: str
    standalone: str  # what retrieval was asked (the follow-up made standalone)
    answer: str  # as shown to the owner (masked values restored), or the held / blocked notice
    status: str  # ok | held | blocked | error
    backend: str
    audit_seq: int | None
    review_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)  # sources, support, findings, reason
    created_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "question": self.question, "standalone": self.standalone, "answer": self.answer,
                "status": self.status, "backend": self.backend, "audit_seq": self.audit_seq,
                "review_id": self.review_id, "created_at": self.created_at, **self.details}


@dataclass(frozen=True)
class Conversation:
    id: str
    owner: str
    title: str
    created_at: float
    updated_at: float
    turns: tuple[Turn, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "created_at": self.created_at, "updated_at": self.updated_at,
                "turns": [t.to_json() for t in self.turns]}


class Conversations:
    def __init__(self, db: Database) -> None:
        self.db = db
        CONVERSATION_MIGRATIONS.apply(db)

    def create(self, owner: str, title: str = "") -> Conversation:
        now = time.time()
        conversation = Conversation(uuid.uuid4().hex[:20], owner, _title(title) or "新しい会話", now, now)
        with self.db.write() as conn:
            conn.execute("INSERT INTO conversations (id, owner, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                         (conversation.id, owner, conversation.title, now, now))
        return conversation

    def list(self, owner: str, *, limit: int = 200) -> list[Conversation]:
        with self.db.read() as conn:
            rows = conn.execute("SELECT id, owner, title, created_at, updated_at FROM conversations WHERE owner = ? "
                                "ORDER BY updated_at DESC LIMIT ?", (owner, limit)).fetchall()
        return [Conversation(*row) for row in rows]

    def get(self, owner: str, conversation_id: str) -> Conversation:
        with self.db.read() as conn:
            row = conn.execute("SELECT id, owner, title, created_at, updated_at FROM conversations "
                               "WHERE id = ? AND owner = ?", (conversation_id, owner)).fetchone()
            if row is None:
                raise ConversationNotFound(f"conversation {conversation_id}: no such conversation")
            turns = conn.execute(
                "SELECT n, question, standalone, answer, status, backend, audit_seq, review_id, details, created_at "
                "FROM conversation_turns WHERE conversation_id = ? ORDER BY n", (conversation_id,)).fetchall()
        return Conversation(*row, turns=tuple(Turn(*t[:8], details=json.loads(t[8]), created_at=t[9]) for t in turns))

    def rename(self, owner: str, conversation_id: str, title: str) -> Conversation:
        if not _title(title):
            raise InvalidInput("title: a conversation's title must not be empty")
        with self.db.write() as conn:
            changed = conn.execute("UPDATE conversations SET title = ? WHERE id = ? AND owner = ?",
                                   (_title(title), conversation_id, owner)).rowcount
        if not changed:
            raise ConversationNotFound(f"conversation {conversation_id}: no such conversation")
        return self.get(owner, conversation_id)

    def delete(self, owner: str, conversation_id: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM conversation_turns WHERE conversation_id IN "
                         "(SELECT id FROM conversations WHERE id = ? AND owner = ?)", (conversation_id, owner))
            deleted = conn.execute("DELETE FROM conversations WHERE id = ? AND owner = ?",
                                   (conversation_id, owner)).rowcount
        if not deleted:
            raise ConversationNotFound(f"conversation {conversation_id}: no such conversation")

    def add_turn(self, owner: str, conversation_id: str, turn: Turn, *, replace_last: bool = False) -> Turn:
        """Append `turn` (numbered here), or put it in place of the last one (regenerate). The
        first question becomes the title of a conversation still called by its default name."""
        now = time.time()
        with self.db.write() as conn:
            row = conn.execute("SELECT title FROM conversations WHERE id = ? AND owner = ?",
                               (conversation_id, owner)).fetchone()
            if row is None:
                raise ConversationNotFound(f"conversation {conversation_id}: no such conversation")
            last = conn.execute("SELECT max(n) FROM conversation_turns WHERE conversation_id = ?",
                                (conversation_id,)).fetchone()[0]
            if replace_last and last is not None:
                conn.execute("DELETE FROM conversation_turns WHERE conversation_id = ? AND n = ?",
                             (conversation_id, last))
                n = last
            else:
                n = (last or 0) + 1
            if n > MAX_TURNS:
                raise InvalidInput(f"conversation {conversation_id}: at most {MAX_TURNS} turns; start a new one")
            conn.execute(
                "INSERT INTO conversation_turns (conversation_id, n, question, standalone, answer, status, backend, "
                "audit_seq, review_id, details, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, n, turn.question, turn.standalone, turn.answer, turn.status, turn.backend,
                 turn.audit_seq, turn.review_id, json.dumps(turn.details, ensure_ascii=False), now))
            title = row[0] if row[0] != "新しい会話" or n > 1 else _title(turn.question)
            conn.execute("UPDATE conversations SET updated_at = ?, title = ? WHERE id = ?", (now, title, conversation_id))
        return Turn(n, turn.question, turn.standalone, turn.answer, turn.status, turn.backend, turn.audit_seq,
                    turn.review_id, turn.details, now)

    def record_feedback(self, principal: str, audit_seq: int, rating: int, reason: str) -> None:
        """One rating per answer and person; a second one replaces the first."""
        if rating not in (1, -1):
            raise InvalidInput("rating: 1 (good) or -1 (bad)")
        with self.db.write() as conn:
            conn.execute("DELETE FROM feedback WHERE audit_seq = ? AND principal = ?", (audit_seq, principal))
            conn.execute("INSERT INTO feedback (audit_seq, principal, rating, reason, created_at) VALUES (?, ?, ?, ?, ?)",
                         (audit_seq, principal, rating, reason.strip()[:1000], time.time()))

    def owns_answer(self, owner: str, audit_seq: int) -> bool:
        """Whether one of `owner`'s conversations holds the answer audited as `audit_seq`."""
        with self.db.read() as conn:
            return conn.execute("SELECT 1 FROM conversation_turns t JOIN conversations c ON c.id = t.conversation_id "
                                "WHERE c.owner = ? AND t.audit_seq = ?", (owner, audit_seq)).fetchone() is not None


def _title(text: str) -> str:
    return " ".join(text.split())[:TITLE_CHARS]


def export_markdown(conversation: Conversation) -> str:
    """The conversation as a Markdown document, sources and audit numbers kept."""
    lines = [f"# {conversation.title}", ""]
    for turn in conversation.turns:
        lines += [f"## Q{turn.n}. {turn.question}", "", turn.answer, ""]
        sources = turn.details.get("sources") or []
        if sources:
            lines.append("出典 / Sources:")
            lines += [f"{s['n']}. {s['title']} ({s.get('location', '')})" for s in sources]
            lines.append("")
        lines.append(f"_status {turn.status} · {turn.backend} · audit #{turn.audit_seq}_")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"

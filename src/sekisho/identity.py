"""Who is asking: the principal every request is attributed to, the roles sekisho knows, and the
id of the request being served (one id in the access log, the JSON logs and every audit record
the request writes)."""

from __future__ import annotations

import getpass
import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"  # manages keys, documents, configuration
    REVIEWER = "reviewer"  # approves, edits or rejects held outputs
    USER = "user"  # asks questions, searches
    AUDITOR = "auditor"  # reads and verifies the audit log; nothing else


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    tags: tuple[str, ...] = ()  # document access tags this principal may retrieve; () = untagged only


def effective_tags(role: Role, tags: tuple[str, ...]) -> tuple[str, ...]:
    """Admins see every document ("*"); everyone else sees untagged documents plus their own tags."""
    return ("*",) if role is Role.ADMIN else tags


def cli_principal() -> Principal:
    """The operator at the terminal: the machine's user, with admin rights over a local store."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        user = "unknown"
    return Principal(name=f"cli:{user}", role=Role.ADMIN, tags=("*",))


# Set by the server for each HTTP request; threads running its work see it through a copied context.
REQUEST_ID: ContextVar[str | None] = ContextVar("sekisho_request_id", default=None)
# An id a client or a reverse proxy sent (X-Request-ID) is kept when it is a plain token.
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def request_id_from(header: str | None) -> str:
    """The id to serve a request under: the caller's X-Request-ID when it is a plain token (so a
    proxy's id follows the request into the audit log), a new one otherwise."""
    return header if header and _CLIENT_ID.fullmatch(header) else new_request_id()


def current_request_id() -> str:
    """The id of the request being served, or a new one outside any (the CLI, the arena)."""
    return REQUEST_ID.get() or new_request_id()

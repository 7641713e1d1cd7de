"""Who is asking: the principal every request is attributed to, and the roles sekisho knows."""

from __future__ import annotations

import getpass
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


def cli_principal() -> Principal:
    """The operator at the terminal: the machine's user, with admin rights over a local store."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        user = "unknown"
    return Principal(name=f"cli:{user}", role=Role.ADMIN, tags=("*",))

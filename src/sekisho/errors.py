"""The one error base. Every error a user can act on is a `SekishoError`: `str(error)` is one line
naming the thing and the reason, and the class says what the two doors do with it — the CLI exits
with `exit_code` after printing the line, the HTTP server answers `http_status` with `code` in
OpenAI's error shape. Anything else that escapes is a bug: logged with its traceback, answered
with one anonymous line.
"""

from __future__ import annotations


class SekishoError(Exception):
    exit_code: int = 1
    # Most capability errors reach HTTP when a store, log, key or model cannot be used: the
    # operator's problem, with a reason, not an anonymous 500.
    http_status: int = 503
    code: str = "service_unavailable"
    headers: dict[str, str] = {}

    @property
    def message(self) -> str:
        return str(self)


class NotFound(SekishoError):
    """The named object (record, review, key, job, document) does not exist."""

    http_status = 404
    code = "not_found"


class Conflict(SekishoError):
    """The object exists but its state forbids the action (a review already decided)."""

    http_status = 409
    code = "conflict"


class Forbidden(SekishoError):
    """The principal's role or tags do not allow the action."""

    http_status = 403
    code = "forbidden"


class InvalidInput(SekishoError):
    """What the caller sent cannot be used (a bad date, an unreadable file)."""

    http_status = 400
    code = "invalid_request"


def one_line(exc: BaseException, limit: int = 500) -> str:
    """An exception as one line of at most `limit` characters (for a message or an audit record)."""
    return " ".join(str(exc).split())[:limit] or type(exc).__name__

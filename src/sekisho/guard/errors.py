"""Errors the guard raises; each carries one line naming the problem."""

from sekisho.errors import InvalidInput, SekishoError


class GuardError(SekishoError):
    """A guard request that cannot be served (unknown entity, missing optional model, bad registry)."""


class ScanBudgetExceeded(GuardError, InvalidInput):
    """A request holds more text than the guard scans (max_chars), or scanning it ran past the
    request's deadline: refused like any input too large to serve, never scanned unbounded."""

    http_status = 413
    code = "scan_budget_exceeded"

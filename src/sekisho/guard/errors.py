"""Errors the guard raises; each carries one line naming the problem."""

from sekisho.errors import SekishoError


class GuardError(SekishoError):
    """A guard request that cannot be served (unknown entity, missing optional model, bad registry)."""

"""Errors the guard raises; each carries one line naming the problem."""


class GuardError(Exception):
    """A guard request that cannot be served (unknown entity, missing optional model, bad registry)."""

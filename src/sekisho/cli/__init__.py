"""The `sekisho` command line. Each command is a thin shell over its capability's public face; the
modules are grouped by the capability they front, and importing them registers their commands,
in the order `sekisho --help` lists them: down the data flow, then the service around it."""
# isort: skip_file

from sekisho.cli.base import app
from sekisho.cli import knowledge, answers, proofread, guard, governance, service, apps, arena, operations  # noqa: F401

__all__ = ["app"]

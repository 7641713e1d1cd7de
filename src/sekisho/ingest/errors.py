"""The one error ingestion raises: a single line naming the file and the reason."""

from __future__ import annotations

from sekisho.errors import InvalidInput


class IngestError(InvalidInput):
    """A file could not be ingested. ``str(err)`` is one line: ``<file>: <reason>``."""

    code = "invalid_document"

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason

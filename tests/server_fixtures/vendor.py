"""An external model server that records what it receives: scripts/fake_openai_server.py
(server_fixtures.support.start_fake) with --record. Configured without `local = true`, it is
external to the policy, so what it records is what would have left the organisation.

    for url in start_fake(0.0, record=str(path)): ...
    settings = make_settings(folder, extra_toml=backend_toml(url, "vendor", local=False))
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from server_fixtures.support import start_fake


def backend_toml(url: str, name: str = "slow", *, local: bool = True, timeout_s: float = 30) -> str:
    locality = "local = true\n" if local else ""
    return (f'[models.backends.{name}]\nkind = "openai"\nbase_url = "{url}/v1"\nmodel = "fake"\n{locality}'
            f"timeout_s = {timeout_s}\n")


class Recording:
    """The request bodies the fake server appended to its record file, read as they arrive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.touch()
        self._seen = 0

    def all(self) -> list[dict]:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def new(self) -> list[dict]:
        """The bodies received since the last call."""
        bodies = self.all()
        fresh, self._seen = bodies[self._seen:], len(bodies)
        return fresh


@pytest.fixture(scope="module")
def vendor(tmp_path_factory) -> Iterator[tuple[str, Recording]]:
    """An external model server for one test module: (its URL, what it received). Import it into
    the module: `from server_fixtures.vendor import vendor  # noqa: F401`."""
    record = tmp_path_factory.mktemp("vendor") / "received.jsonl"
    for url in start_fake(0.0, record=str(record)):
        yield url, Recording(record)

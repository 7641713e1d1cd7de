"""An external model server that records what it receives: scripts/fake_openai_server.py on a free
loopback port, answering after `delay` seconds. Configured without `local = true`, it is external
to the policy, so what it records is what would have left the organisation.

    for url in start_fake(0.0, record=str(path)): ...
    settings = make_settings(folder, extra_toml=backend_toml(url, "vendor", local=False))
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server_fixtures.support import REPO

FAKE = REPO / "scripts" / "fake_openai_server.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_fake(delay: float, **options: str) -> Iterator[str]:
    """Run the fake model server until the generator is closed; yields its base URL."""
    port = free_port()
    extra = [arg for name, value in options.items() for arg in (f"--{name}", value)]
    process = subprocess.Popen([sys.executable, str(FAKE), "--port", str(port), "--delay", str(delay), *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "fake model server did not start"
        time.sleep(0.1)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(10)


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

"""sekisho as an operator runs it: the `sekisho` command in its own processes over one folder, for
the tests that stop, kill and restart it.

    deployment = Deployment.create(tmp_path, server_toml="shutdown_grace_s = 2")
    key = deployment.key("admin")
    served = deployment.serve()          # `sekisho serve` on a free port, ready
    served.kill()                        # kill -9, the whole process group
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from server_fixtures.support import free_port

SEKISHO = str(Path(sys.executable).parent / "sekisho")


@dataclass
class Served:
    process: subprocess.Popen
    url: str
    log: Path

    def terminate(self, timeout: float = 60.0) -> float:
        """SIGTERM, as a service manager stops it; the seconds until the process exited."""
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout)
        return time.monotonic() - started

    def kill(self) -> None:
        """kill -9: no shutdown, no flush; the process is simply gone."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.terminate(30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Deployment:
    folder: Path
    config: Path

    @classmethod
    def create(cls, folder: Path, *, server_toml: str = "", retrieval_toml: str = "", extra_toml: str = "") -> Deployment:
        config = folder / "sekisho.toml"
        config.write_text(f'[store]\npath = "kb.db"\n[retrieval]\nembedder = "use-m3"\n{retrieval_toml}\n'
                          '[audit]\npath = "audit.db"\nkey_path = "signing.key"\n'
                          f"[server]\nrate_limit_per_minute = 100000\n{server_toml}\n{extra_toml}", encoding="utf-8")
        return cls(folder, config)

    def run(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run([SEKISHO, "--config", str(self.config), *args], capture_output=True, text=True,
                              check=check)

    def key(self, role: str) -> str:
        return self.run("keys", "create", "--role", role, check=True).stdout.strip().splitlines()[-1]

    def serve(self, key: str, *, workers: int = 1, timeout: float = 60.0) -> Served:
        """`sekisho serve` in a process group of its own, once it answers `key`'s /api/me."""
        port = free_port()
        log = self.folder / f"serve-{port}.log"
        process = subprocess.Popen([SEKISHO, "--config", str(self.config), "serve", "--port", str(port),
                                    "--workers", str(workers)], stdout=subprocess.DEVNULL,
                                   stderr=log.open("wb"), start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(url + "/api/me", headers={"Authorization": f"Bearer {key}"}, timeout=2).status_code == 200:
                    return Served(process, url, log)
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"sekisho serve did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)

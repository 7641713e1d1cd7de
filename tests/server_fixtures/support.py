"""Server test support: settings in a temporary folder, a real Uvicorn server on a free loopback
port in a background thread, and keys for each role. Import the fixtures into a test module:

    from server_fixtures.support import live_server, make_settings  # noqa: F401
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from sekisho.config import QuotaLimits, Settings, load_settings
from sekisho.identity import Role
from sekisho.server.app import create_app

REPO = Path(__file__).resolve().parents[2]
CITY = REPO / "samples" / "city"
FAKE_MODEL_SERVER = REPO / "scripts" / "fake_openai_server.py"

# A valid マイナンバー for tests. Check digit (番号法施行令 8条): for the first 11 digits
# 1 2 3 4 5 6 7 8 9 0 1 read from the right (n=1..11: 1,0,9,8,7,6,5,4,3,2,1) with weights
# q = n+1 for n<=6 and n-5 for n>=7 (2,3,4,5,6,7,2,3,4,5,6):
#   1*2 + 0*3 + 9*4 + 8*5 + 7*6 + 6*7 + 5*2 + 4*3 + 3*4 + 2*5 + 1*6
#   = 2 + 0 + 36 + 40 + 42 + 42 + 10 + 12 + 12 + 10 + 6 = 212;  212 mod 11 = 3
#   check digit = 11 - 3 = 8  ->  123456789018
MY_NUMBER = "123456789018"
MY_NUMBER_WRONG_CHECK = "123456789012"


def make_settings(folder: Path, *, policy: str | None = None, rate_limit: int = 10_000,
                  max_upload_mb: int = 1, extra_toml: str = "", unauthenticated: int = 10_000,
                  retrieval_toml: str = "", store_url: str = "") -> Settings:
    """Settings for one test server, every file inside `folder` (documents, audit log and keys in
    PostgreSQL instead when `store_url` is given). A policy text, if given, is written beside it
    (the organisation's own policy file); `retrieval_toml` adds lines to the [retrieval] table."""
    lines = [
        f'[store]\npath = "kb.db"\nurl = "{store_url}"',
        '[retrieval]\nembedder = "use-m3"\n' + retrieval_toml,
        '[audit]\npath = "audit.db"\nkey_path = "signing.key"',
        f"[server]\nrate_limit_per_minute = {rate_limit}\nmax_upload_mb = {max_upload_mb}\n"
        f"unauthenticated_per_minute = {unauthenticated}",
    ]
    if policy is not None:
        (folder / "policy.toml").write_text(policy, encoding="utf-8")
        lines.append('[guard]\npolicy = "policy.toml"')
    lines.append(extra_toml)
    config = folder / "sekisho.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_settings(config, environ={})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    app: object
    settings: Settings
    keys: dict[str, str]  # role -> secret

    def client(self, role: str | None = None, **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60.0, **kwargs)

    def key(self, role: str, name: str = "", tags: tuple[str, ...] = (), limits: QuotaLimits | None = None) -> str:
        _, secret = self.app.state.sekisho.keys.create(Role(role), name, tags, limits)
        return secret


def run_server(settings: Settings) -> Iterator[LiveServer]:
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="sekisho-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    keys = {}
    for role in Role:
        _, secret = app.state.sekisho.keys.create(role, f"test-{role.value}")
        keys[role.value] = secret
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}", app=app, settings=settings, keys=keys)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with the built-in policy, shared by one test module: on SQLite files, then on
    PostgreSQL (a schema of the session's server for the module)."""
    if request.param == "sqlite":
        yield from run_server(make_settings(tmp_path_factory.mktemp("server")))
        return
    import uuid

    import psycopg

    from conftest import schema_url

    base = request.getfixturevalue("postgres_server")
    schema = f"m_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield from run_server(make_settings(tmp_path_factory.mktemp("server"), store_url=schema_url(base, schema)))
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def csrf_of(page: str) -> str:
    """The session's CSRF token from a page of the web UI (its <meta name="csrf-token">)."""
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def start_fake(delay: float, **options: str) -> Iterator[str]:
    """scripts/fake_openai_server.py on a free loopback port (answering after `delay` seconds), for
    as long as the generator is open: yields its URL (without /v1)."""
    port = free_port()
    extra = [arg for name, value in options.items() for arg in (f"--{name}", value)]
    process = subprocess.Popen([sys.executable, str(FAKE_MODEL_SERVER), "--port", str(port), "--delay", str(delay),
                                *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def upload_and_wait(admin: httpx.Client, paths: Sequence[Path] | None = None,
                    extra: Sequence[tuple[str, bytes]] = ()) -> dict:
    """Upload files as `admin` (default: every city sample; `extra`: (name, bytes) made up by the
    test) and return the ingest job once it ended."""
    files = [("files", (p.name, p.read_bytes())) for p in (sorted(CITY.iterdir()) if paths is None else paths)]
    files += [("files", (name, data)) for name, data in extra]
    return wait_for_job(admin, admin.post("/api/documents", files=files).json()["id"])


def assert_uploads_ingested_once(log, jobs: Sequence[str]) -> None:  # noqa: ANN001 (AuditLog)
    """Every upload job has exactly one ingest record, whichever process took it, and the CLI's
    own ingest of the fixture's first document is recorded too."""
    ingests = [e.record for e in log.query(kind="document.ingest", limit=1000)]
    assert sorted(r["job"] for r in ingests if "job" in r) == sorted(jobs)
    assert [r["status"] for r in ingests if "job" not in r] == ["added"]


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"ingest job {job_id} did not finish: {job}")
        time.sleep(0.2)

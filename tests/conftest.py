"""Shared pytest fixtures. Each area owns one clearly marked block; add yours, edit only your own."""

from __future__ import annotations

# ===== test tiers ==========================================================================
# A test is marked from what it uses, so nobody has to remember to: a GGUF model or the llama.cpp
# server -> model; anything under e2e/ -> browser (and server); the test_server_* modules, which
# start sekisho on loopback -> server. `slow` is set by hand on tests slow for another reason.
MODEL_FIXTURES = frozenset({"gguf_qwen05b_path", "gguf_qwen15b_path", "gguf_gemma270m_path", "llama_server_url"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & MODEL_FIXTURES:
            item.add_marker("model")
        if "e2e" in item.path.parts:
            item.add_marker("browser")
        if "e2e" in item.path.parts or item.path.name.startswith("test_server_"):
            item.add_marker("server")
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "postgres_server" in used or "postgresql" in params.values():
            item.add_marker("postgres")
# ===== end of test tiers ===================================================================

# ===== model fixtures (owner: models/) =====================================================
# gguf_qwen05b_path / gguf_qwen15b_path / gguf_gemma270m_path: verified GGUF files assembled from PyPI part packages.
# llama_server_url: a real OpenAI-compatible server (llama-cpp-python's) on a free loopback
#   port, serving the 0.5B model under the id LLAMA_SERVER_MODEL, for the whole session.
# Missing packages make these fixtures FAIL with the command to run, never skip.
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

LLAMA_SERVER_MODEL = "qwen2.5-coder-0.5b"
_GGUF_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gguf_models.py"


def _gguf_models():
    spec = importlib.util.spec_from_file_location("sekisho_gguf_models", _GGUF_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def _gguf(name: str) -> Path:
    gguf = _gguf_models()
    try:
        return gguf.assemble(name)
    except gguf.ModelMissing as exc:
        pytest.fail(f"GGUF model {name} unavailable: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def gguf_qwen05b_path() -> Path:
    return _gguf("qwen2.5-coder-0.5b")


@pytest.fixture(scope="session")
def gguf_qwen15b_path() -> Path:
    return _gguf("qwen2.5-coder-1.5b")


@pytest.fixture(scope="session")
def gguf_gemma270m_path() -> Path:
    return _gguf("gemma3-270m")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server_url(gguf_qwen05b_path: Path) -> Iterator[str]:
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("sse_starlette") is None:
        pytest.fail("llama-cpp-python's server is not installed: pip install -e '.[llama]'", pytrace=False)
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf_qwen05b_path), "--model_alias", LLAMA_SERVER_MODEL,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--seed", "42",
    ]
    # Same thread policy as sekisho's in-process backend (see models/llamacpp.py).
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180  # model load on a busy 2-core machine
        while True:
            if server.poll() is not None:
                tail = Path(log.name).read_text(errors="replace")[-800:]
                pytest.fail(f"llama_cpp.server exited with {server.returncode}: {tail}", pytrace=False)
            try:
                if httpx.get(url + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer on {url} within 180 s (log: {log.name})", pytrace=False)
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)  # uvicorn waits for in-flight generations; no need here
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        Path(log.name).unlink(missing_ok=True)
# ===== end of model fixtures ===============================================================


# ===== store fixtures (owner: store/) ======================================================
# one_chunk_store(text, lexical, title="t"): an open SQLite store in tmp_path holding one document
#   of one chunk ("d:0") with `text`, indexed under the given BM25 text; closed after the test.
@pytest.fixture
def one_chunk_store(tmp_path):
    import numpy as np

    from sekisho.store import Chunk, Document, Location, open_store

    opened = []

    def make(text: str, lexical: str, title: str = "t"):
        store = open_store(tmp_path / f"kb{len(opened)}.db")
        opened.append(store)
        doc = Document(id="d", path="d.txt", title=title, content_hash="h", media_type="text/plain",
                       encoding="utf-8", text=text)
        chunk = Chunk(id="d:0", doc_id="d", ordinal=0, text=text, norm_text=text, location=Location(0, len(text)))
        store.replace_document(doc, [chunk], [lexical], np.ones((1, 4), dtype=np.float32))
        return store

    yield make
    for store in opened:
        store.close()
# ===== end of store fixtures ===============================================================


# ===== postgres fixtures (owner: db/, store/postgres/) =====================================
# postgres_server: PostgreSQL 16 + pgvector (the pgserver package) started from nothing in a temp
#   folder for the session, on a Unix socket; its base URL. FAILS with the command to run if it
#   cannot start, never skips.
# postgres_url: a fresh schema of that server for one test (dropped afterwards), as a URL whose
#   search_path is that schema then public (where the vector extension lives).
# database_target: parametrised "sqlite" / "postgresql": a file path in tmp_path or postgres_url,
#   for tests that run the same code on both databases.
# run_sql(target, sql, *params): one statement on that database, outside sekisho (tampering).
import shutil
import uuid
from urllib.parse import quote


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    import warnings

    try:
        with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR unset (CI), harmless here
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        pytest.fail("pgserver is not installed: pip install -e '.[test]'", pytrace=False)
    # Short and outside pytest's private temp folders: the server runs as another user when the
    # tests run as root, and a Unix socket path must stay under 108 bytes.
    folder = Path(tempfile.mkdtemp(prefix="skpg-", dir="/tmp"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(folder, cleanup_mode="stop")
        url = server.get_uri()
        server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported as one line
        pytest.fail(f"PostgreSQL (pgserver) did not start in {folder}: {exc}; try: "
                    f"python -c \"import pgserver; pgserver.get_server('/tmp/pg')\"", pytrace=False)
    try:
        yield url
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def schema_url(base: str, schema: str) -> str:
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options={quote(f'-c search_path={schema},public')}"


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield schema_url(postgres_server, schema)
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_target(request, tmp_path):
    if request.param == "sqlite":
        return tmp_path / "sekisho.db"
    return request.getfixturevalue("postgres_url")


def run_sql(target, sql: str, *params) -> list[tuple]:
    if str(target).startswith("postgresql://"):
        import psycopg

        from sekisho.db.postgres import postgres_sql

        with psycopg.connect(str(target), autocommit=True) as conn:
            cursor = conn.execute(postgres_sql(sql), params or None)
            return cursor.fetchall() if cursor.description else []
    import sqlite3

    conn = sqlite3.connect(target)
    try:
        rows = conn.execute(sql, params).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()
# ===== end of postgres fixtures ============================================================

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

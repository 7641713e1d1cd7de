"""What operators' tooling relies on: /healthz, /readyz naming what is down, /metrics that
Prometheus' own parser reads and that count what the audit log holds, the request id from the
response header to the audit record, `sekisho --version` and `sekisho config check`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import sekisho
from sekisho.audit.log import AuditLog
from server_fixtures.support import MY_NUMBER, free_port, make_settings, run_server

pytestmark = pytest.mark.server
SEKISHO = [sys.executable, "-m", "sekisho"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ops")
    # A second backend nobody serves: an OpenAI-compatible server on a port where nothing listens.
    extra = (f'[models.backends.offline]\nkind = "openai"\nbase_url = "http://127.0.0.1:{free_port()}/v1"\n'
             'model = "m"\ntimeout_s = 2\n')
    yield from run_server(make_settings(folder, extra_toml=extra))


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """label set -> value of every sample called `name`, read with prometheus_client's parser."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_healthz_says_the_process_serves_and_its_version(server):
    with server.client() as anonymous:
        r = anonymous.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["version"] == sekisho.__version__


def test_readyz_is_ready_with_an_optional_backend_down_and_names_it(server):
    with server.client() as anonymous:
        r = anonymous.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "degraded"
    assert body["checks"]["store"] == body["checks"]["audit"] == body["checks"]["backend:extractive"] == "ok"
    assert "offline" in body["checks"]["backend:offline"] or "connect" in body["checks"]["backend:offline"].lower()


def test_metrics_count_what_the_audit_log_holds(server):
    with server.client() as anonymous:
        before = anonymous.get("/metrics").text
    with server.client("user") as user:
        for content in ("こんにちは", f"マイナンバーは{MY_NUMBER}です"):
            r = user.post("/v1/chat/completions", json={"model": "extractive",
                                                        "messages": [{"role": "user", "content": content}]})
            assert r.status_code == 200, r.text
        assert user.post("/api/search", json={"query": "住民票", "k": 1}).status_code == 200
    with server.client() as anonymous:
        after = anonymous.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    key = (("backend", "extractive"), ("purpose", "chat"), ("status", "ok"))
    governed_before = samples(before, "sekisho_governed_requests_total").get(key, 0)
    assert samples(after.text, "sekisho_governed_requests_total")[key] == governed_before + 2
    masks = samples(after.text, "sekisho_guard_actions_total")
    assert masks[(("action", "mask"),)] - samples(before, "sekisho_guard_actions_total").get((("action", "mask"),), 0) == 1
    tokens = samples(after.text, "sekisho_tokens_total")
    assert tokens[(("backend", "extractive"), ("direction", "prompt"))] > 0
    # Every audit record's append was timed: the histogram counts what the log holds.
    log = AuditLog.from_settings(server.settings)
    records, _ = log.head()
    log.close()
    assert samples(after.text, "sekisho_audit_append_duration_seconds_count")[()] == records
    http = samples(after.text, "sekisho_http_requests_total")
    assert http[(("method", "POST"), ("route", "/v1/chat/completions"), ("status", "200"))] >= 2
    # Routes, not paths: no series per document id or per query.
    assert all(dict(labels)["route"].startswith("/") or dict(labels)["route"] == "unmatched" for labels in http)
    assert samples(after.text, "sekisho_ingest_files")[(("status", "queued"),)] == 0


def test_the_request_id_goes_from_the_header_into_the_audit_record(server):
    with server.client("user") as user:
        mine = user.post("/v1/chat/completions", headers={"X-Request-ID": "proxy-7f3a9c21"},
                         json={"model": "extractive", "messages": [{"role": "user", "content": "こんにちは"}]})
        fresh = user.post("/api/ask", headers={"X-Request-ID": "<script>"}, json={"question": "住民票の手数料は？"})
    assert mine.headers["X-Request-ID"] == "proxy-7f3a9c21"
    assert fresh.headers["X-Request-ID"] != "<script>" and len(fresh.headers["X-Request-ID"]) == 16
    log = AuditLog.from_settings(server.settings)
    try:
        assert log.get(mine.json()["sekisho"]["audit_seq"]).record["request_id"] == "proxy-7f3a9c21"
        assert log.get(fresh.json()["audit_seq"]).record["request_id"] == fresh.headers["X-Request-ID"]
    finally:
        log.close()


def test_readyz_fails_when_the_store_is_gone(tmp_path):
    for live in run_server(make_settings(tmp_path)):
        with live.client() as anonymous:
            assert anonymous.get("/readyz").status_code == 200
            # The volume holding the store is unmounted under a running server (here: moved away).
            shutil.move(tmp_path / "kb.db", tmp_path / "kb.db.away")
            r = anonymous.get("/readyz")
            assert r.status_code == 503 and r.json()["status"] == "not ready"
            assert "the store file is gone" in r.json()["checks"]["store"]
            assert r.json()["checks"]["audit"] == "ok"
            shutil.move(tmp_path / "kb.db.away", tmp_path / "kb.db")
            assert anonymous.get("/readyz").status_code == 200


def test_api_docs_are_served_from_the_package(server):
    with server.client() as anonymous:
        page = anonymous.get("/docs")
        assert page.status_code == 200
        scripts = [line.split('"')[1] for line in page.text.splitlines() if "<script src=" in line]
        assert scripts == ["/static/swagger-ui-bundle.js", "/static/api-docs.js"]
        for asset in [*scripts, "/static/swagger-ui.css"]:
            assert anonymous.get(asset).status_code == 200
        assert "http" not in page.text.replace("http-equiv", "")  # nothing loaded from elsewhere


def test_version_flag():
    result = subprocess.run([*SEKISHO, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"sekisho {sekisho.__version__}"


def test_config_check_loads_everything_and_names_each_problem(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(f'[guard]\npolicy = "{REPO}/samples/policy.toml"\n'
                    f'copyright_registry = "{REPO}/samples/copyright-registry.toml"\n'
                    f'[proofread]\ndictionary = "{REPO}/samples/proofread-dictionary.toml"\n', encoding="utf-8")
    result = subprocess.run([*SEKISHO, "config", "check", str(good), "--json"], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert all(c["ok"] for c in checks.values())
    assert checks["copyright 著作物台帳"]["detail"].endswith("2 works")
    assert "6 apps" in checks["apps 業務アプリ"]["detail"]

    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "broken.toml").write_text('id = "Broken App"\n', encoding="utf-8")
    (tmp_path / "fake.gguf").write_bytes(b"not a model")
    bad = tmp_path / "bad.toml"
    bad.write_text('[guard]\npolicy = "missing-policy.toml"\n[apps]\nfolder = "apps"\n'
                   '[models]\ndefault = "qwen"\n[models.backends.qwen]\nkind = "llama.cpp"\nmodel = "fake.gguf"\n'
                   '[models.backends.vendor]\nkind = "openai"\nbase_url = "https://llm.example.jp/v1"\nmodel = "x"\n'
                   'api_key_env = "SEKISHO_TEST_UNSET_KEY"\n', encoding="utf-8")
    result = subprocess.run([*SEKISHO, "config", "check", str(bad), "--json"], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 1
    failed = {c["name"]: c["detail"] for c in json.loads(result.stdout) if not c["ok"]}
    assert set(failed) == {"policy ポリシー", "apps 業務アプリ", "backend qwen", "backend vendor"}
    assert "missing-policy.toml: policy file not found" in failed["policy ポリシー"]
    assert "broken.toml" in failed["apps 業務アプリ"]
    assert failed["backend qwen"].endswith("not a GGUF model file")
    assert "environment variable SEKISHO_TEST_UNSET_KEY (api_key_env) is not set" in failed["backend vendor"]

    unparsable = tmp_path / "unparsable.toml"
    unparsable.write_text('[server]\nport = "eighty"\n', encoding="utf-8")
    result = subprocess.run([*SEKISHO, "config", "check", str(unparsable)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stderr.strip().count("\n") == 0
    assert "server.port" in result.stderr and "Traceback" not in result.stderr


def test_metrics_need_no_key_but_carry_no_names(server):
    with server.client() as anonymous:
        text = anonymous.get("/metrics").text
    assert "test-user" not in text and "住民票" not in text
    assert httpx.get(f"{server.url}/metrics").status_code == 200


@pytest.mark.postgres
def test_readyz_fails_while_postgresql_is_down_and_recovers(tmp_path):
    """The store and the audit log in a PostgreSQL of their own, stopped under the running server."""
    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="skpg-ready-", dir="/tmp"))  # a socket path must stay short
    database = pgserver.get_server(folder, cleanup_mode="stop")
    try:
        database.psql("CREATE EXTENSION IF NOT EXISTS vector;")
        settings = make_settings(tmp_path, store_url=database.get_uri())  # the audit log goes with the store
        for live in run_server(settings):
            with live.client() as anonymous:
                ready = anonymous.get("/readyz")
                assert ready.status_code == 200, ready.text
                database.cleanup()  # PostgreSQL stops
                down = anonymous.get("/readyz", timeout=30)
                assert down.status_code == 503 and down.json()["status"] == "not ready"
                assert down.json()["checks"]["store"] != "ok" and down.json()["checks"]["audit"] != "ok"
                assert down.json()["checks"]["backend:extractive"] == "ok"
                database = pgserver.get_server(folder, cleanup_mode="stop")  # and comes back
                deadline = time.monotonic() + 30
                while anonymous.get("/readyz", timeout=30).status_code != 200:
                    assert time.monotonic() < deadline, "not ready again after PostgreSQL came back"
                    time.sleep(0.5)
    finally:
        database.cleanup()
        shutil.rmtree(folder, ignore_errors=True)

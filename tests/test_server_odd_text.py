"""Odd text never crashes a door (#19): a lone surrogate (JSON's "\\ud800", or bytes that are not
UTF-8 on a command line) is refused with 400 and one line before any model runs, through every
door; a model whose answer is not valid Unicode, or is too long to check, is still answered or
refused cleanly; and every failure after a model call leaves its audit record."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sekisho.audit.log import AuditLog
from sekisho.cli import app as cli
from sekisho.guard.registry import MAX_SCAN_CHARS
from sekisho.models import ChatRequest, Completion, ModelInfo, register_backend
from server_fixtures.support import make_settings, run_server
from server_fixtures.vendor import backend_toml, vendor  # noqa: F401

LONE = "\ud800"
# Replies of the in-process test backend, by its `options.reply`.
REPLIES = {"surrogate": f"回答です{LONE}。続きもあります。", "endless": "あ" * (MAX_SCAN_CHARS + 1)}


class ReplyBackend:
    """A model that answers one fixed text whatever it is asked."""

    def __init__(self, name: str, reply: str) -> None:
        self.name, self.reply = name, reply

    def info(self) -> ModelInfo:
        return ModelInfo(name=self.name, kind="reply-test", model="reply-test", local=True)

    def complete(self, request: ChatRequest) -> Completion:
        return Completion(self.reply, "reply-test", 1, 1)

    def stream(self, request: ChatRequest) -> Iterator[str]:
        yield from (self.reply[i:i + 4096] for i in range(0, len(self.reply), 4096))

    def count_tokens(self, text: str) -> int:
        return len(text)

    def check(self) -> None:
        pass


register_backend("reply-test", lambda name, config, settings: ReplyBackend(name, REPLIES[config.options["reply"]]))


@pytest.fixture(scope="module")
def server(tmp_path_factory, vendor):
    extra = (backend_toml(vendor[0], "vendor", local=False) + '[models.backends.extractive]\nkind = "extractive"\n'
             + "".join(f'[models.backends.{reply}]\nkind = "reply-test"\noptions = {{reply = "{reply}"}}\n'
                       for reply in REPLIES))
    yield from run_server(make_settings(tmp_path_factory.mktemp("odd"), extra_toml=extra))


def _post(client, path: str, body: dict):
    # json.dumps escapes the surrogate as \ud800, as a client's JSON library would.
    return client.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})


def _records(server) -> list[dict]:
    log = AuditLog.from_settings(server.settings)
    try:
        return [e.record for kind in ("chat", "ask") for e in log.query(kind=kind, limit=10_000)]
    finally:
        log.close()


CHAT_PLACES = {
    "user message": {"messages": [{"role": "user", "content": f"こんにちは{LONE}"}]},
    "system message": {"messages": [{"role": "system", "content": LONE}, {"role": "user", "content": "こんにちは"}]},
    "assistant turn": {"messages": [{"role": "assistant", "content": f"はい{LONE}"},
                                    {"role": "user", "content": "続けて"}]},
    "content part": {"messages": [{"role": "user", "content": [{"type": "text", "text": LONE}]}]},
    "stop string": {"messages": [{"role": "user", "content": "こんにちは"}], "stop": [LONE]},
}


@pytest.mark.parametrize("model", ["vendor", "extractive", "sekisho-rag/vendor", "sekisho-rag/extractive"])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("place", list(CHAT_PLACES))
def test_a_lone_surrogate_in_a_chat_is_400_before_any_model(server, vendor, model, stream, place):
    _, received = vendor
    received.new()
    before = len(_records(server))
    with server.client("user") as client:
        response = _post(client, "/v1/chat/completions", {"model": model, "stream": stream, **CHAT_PLACES[place]})
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert error["code"] in ("invalid_request", "invalid_text") and "\n" not in error["message"]
    assert "valid Unicode" in error["message"] or "retrieval answers need" in error["message"]
    assert received.new() == []
    assert len(_records(server)) == before  # refused at the door: no model ran, nothing to record


@pytest.mark.parametrize("path, body", [
    ("/api/ask", {"question": f"手数料は{LONE}"}),
    ("/api/ask", {"question": "手数料は", "backend": f"vendor{LONE}"}),
    ("/v1/chat/completions", {"model": f"vendor{LONE}", "messages": [{"role": "user", "content": "x"}]}),
    ("/api/search", {"query": f"手数料{LONE}"}),
    ("/v1/embeddings", {"model": "default", "input": [f"手数料{LONE}"]}),
    ("/api/proofread", {"text": f"検討を行う{LONE}。"}),
])
def test_a_lone_surrogate_is_one_line_and_never_a_server_error_at_any_door(server, vendor, path, body):
    _, received = vendor
    received.new()
    with server.client("admin") as client:
        response = _post(client, path, body)
    assert response.status_code in (400, 404), response.text[:300]
    assert "\n" not in response.json()["error"]["message"]
    assert received.new() == []


def test_a_lone_surrogate_in_a_key_name_or_a_review_is_400(server):
    with server.client("admin") as admin:
        assert _post(admin, "/api/keys", {"role": "user", "name": f"kiosk{LONE}"}).status_code == 400
        assert _post(admin, "/api/keys", {"role": "user", "name": "kiosk", "tags": [LONE]}).status_code == 400
        names = [k["name"] for k in admin.get("/api/keys").json()["keys"]]
    assert "kiosk" not in names  # nothing half-written


def test_the_cli_refuses_text_that_is_not_utf8_in_one_line(server, tmp_path):
    config = str(Path(server.settings.base_dir) / "sekisho.toml")
    # Bytes that are not UTF-8 on the command line reach Python as lone surrogates (surrogateescape).
    result = CliRunner().invoke(cli, ["--config", config, "ask", "手数料は\udced\udca0\udc80", "--model", "vendor"])
    assert result.exit_code == 1 and "valid Unicode" in result.output and "Traceback" not in result.output
    completed = subprocess.run([Path(sys.executable).parent / "sekisho", "--config", config, "ask",
                                "手数料は".encode() + b"\xed\xa0\x80", "--model", "vendor"], capture_output=True)
    assert completed.returncode == 1, completed.stderr.decode(errors="replace")
    assert completed.stderr.decode().startswith("error:") and b"Traceback" not in completed.stderr


@pytest.mark.parametrize("stream", [False, True])
def test_a_model_answer_that_is_not_valid_unicode_is_answered_and_audited(server, stream):
    with server.client("user") as client:
        response = _post(client, "/v1/chat/completions", {
            "model": "surrogate", "stream": stream, "messages": [{"role": "user", "content": "こんにちは"}]})
    assert response.status_code == 200, response.text[:300]
    text = response.text
    assert "\ufffd" in (text if stream else response.json()["choices"][0]["message"]["content"])
    seq = (json.loads(text.split("data: ")[-2])["sekisho"] if stream else response.json()["sekisho"])["audit_seq"]
    log = AuditLog.from_settings(server.settings)
    try:
        record = log.get(seq).record
    finally:
        log.close()
    assert record["status"] == "ok" and "\ufffd" in record["output"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_failure_after_the_model_call_is_audited(server, stream):
    """An answer too long for the output checks is refused (413), and the request that caused it
    is on record as an error, not lost."""
    before = len([r for r in _records(server) if r["status"] == "error"])
    with server.client("user") as client:
        response = _post(client, "/v1/chat/completions", {
            "model": "endless", "stream": stream, "messages": [{"role": "user", "content": "こんにちは"}]})
    assert response.status_code in (200, 413)
    if stream:
        assert "error" in response.text.split("data: ")[-2]
    errors = [r for r in _records(server) if r["status"] == "error"]
    assert len(errors) == before + 1 and "guard:" in errors[-1]["error"]

"""The OpenAI-compatible HTTP backend against a real server: llama-cpp-python's own
OpenAI-compatible server running Qwen2.5-Coder-0.5B-Instruct on a loopback port (the
`llama_server_url` fixture). Retry and credential behaviour, which no real server can be made to
show on demand, is exercised against a minimal HTTP server that answers with chosen statuses."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import LLAMA_SERVER_MODEL, free_port
from sekisho.config import BackendConfig
from sekisho.models import BackendError, ChatRequest, Message
from sekisho.models.openai_http import OpenAIBackend


def backend(url: str, model: str = LLAMA_SERVER_MODEL, **config) -> OpenAIBackend:
    return OpenAIBackend("onprem", BackendConfig(kind="openai", base_url=url, model=model, **config))


def ask(text: str, max_tokens: int = 16) -> ChatRequest:
    return ChatRequest(messages=[Message("user", text)], max_tokens=max_tokens)


def test_complete_against_a_real_server(llama_server_url):
    onprem = backend(llama_server_url)
    onprem.check()
    completion = onprem.complete(ask("What is 2 + 3? Reply with only the number."))
    assert completion.text.strip().startswith("5")
    assert completion.prompt_tokens > 0 and 0 < completion.completion_tokens <= 16
    assert completion.finish_reason in {"stop", "length"}


def test_stream_reassembles_the_same_answer(llama_server_url):
    onprem = backend(llama_server_url)
    request = ask("日本の首都はどこですか？一言で答えてください。", max_tokens=12)
    pieces = list(onprem.stream(request))
    assert len(pieces) > 1
    assert "".join(pieces) == onprem.complete(request).text
    # Small Qwen models often write Japanese with simplified characters (东京): both are Tokyo.
    assert "東京" in "".join(pieces) or "东京" in "".join(pieces)


def test_base_url_without_v1_is_accepted(llama_server_url):
    onprem = backend(llama_server_url.removesuffix("/v1"))
    onprem.check()
    assert onprem.info().extra["base_url"] == llama_server_url


def test_count_tokens_uses_the_servers_tokenizer(llama_server_url):
    # Qwen2's byte-level BPE: "Hello" and " world" are one token each.
    assert backend(llama_server_url).count_tokens("Hello world") == 2


def test_wrong_model_name_lists_what_the_server_offers(llama_server_url):
    with pytest.raises(BackendError) as caught:
        backend(llama_server_url, model="gpt-4o").complete(ask("hi"))
    message = str(caught.value)
    assert "'gpt-4o' is not offered by" in message and LLAMA_SERVER_MODEL in message
    assert "\n" not in message


def test_unreachable_server_is_one_line_after_bounded_retries():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        backend(url, options={"max_retries": 1}).complete(ask("hi"))
    assert str(caught.value).startswith(f"backend 'onprem': cannot reach {url}")
    assert 0.5 <= time.monotonic() - started < 10  # one backoff, then give up


def test_slow_server_times_out_with_a_clear_error(llama_server_url):
    slow = backend(llama_server_url, timeout_s=0.05, options={"verify_model": False})
    with pytest.raises(BackendError, match=r"'onprem': .* timed out after 0.05 s"):
        # Short: the server finishes this generation after we give up, and the session's later
        # tests queue behind it.
        slow.complete(ask("Write a long story about a cat.", max_tokens=8))


def test_locality_is_external_unless_declared():
    assert backend("http://127.0.0.1:8000/v1").info().local is False
    assert backend("https://api.vendor.example/v1").info().local is False
    declared = backend("http://10.0.0.5:8000/v1", local=True).info()
    assert declared.local is True and "declared" in declared.extra["locality"]


def test_api_key_comes_from_the_named_environment_variable(monkeypatch):
    with pytest.raises(BackendError, match="environment variable SEKISHO_TEST_KEY"):
        backend("https://api.vendor.example/v1", api_key_env="SEKISHO_TEST_KEY")
    monkeypatch.setenv("SEKISHO_TEST_KEY", "sk-test")
    with pytest.raises(BackendError, match="refusing to send the API key over plain http"):
        backend("http://api.vendor.example/v1", api_key_env="SEKISHO_TEST_KEY")


class Scripted(BaseHTTPRequestHandler):
    """Answers POSTs with the next (status, body) of `script`, recording what it was sent."""

    script: list[tuple[int, dict]] = []
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("content-length", 0))
        self.seen.append({"auth": self.headers.get("authorization"), "body": json.loads(self.rfile.read(length))})
        status, body = self.script.pop(0)
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        if status == 429:
            self.send_header("retry-after", "0")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    Scripted.script, Scripted.seen = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


OK = {"model": "m", "choices": [{"message": {"content": "はい"}, "finish_reason": "stop"}],
      "usage": {"prompt_tokens": 3, "completion_tokens": 1}}


def test_429_and_5xx_are_retried_and_the_key_is_sent(scripted, monkeypatch):
    monkeypatch.setenv("SEKISHO_TEST_KEY", "sk-test")
    Scripted.script = [(503, {"error": "busy"}), (429, {"error": "slow down"}), (200, OK)]
    client = backend(scripted, model="m", api_key_env="SEKISHO_TEST_KEY", options={"verify_model": False})
    assert client.complete(ask("hi")).text == "はい"
    assert len(Scripted.seen) == 3
    assert {s["auth"] for s in Scripted.seen} == {"Bearer sk-test"}
    assert Scripted.seen[0]["body"]["messages"] == [{"role": "user", "content": "hi"}]


def test_a_4xx_is_not_retried_and_carries_the_servers_reason(scripted):
    Scripted.script = [(400, {"error": {"message": "max_tokens is too large"}}), (200, OK)]
    client = backend(scripted, model="m", options={"verify_model": False})
    with pytest.raises(BackendError, match="HTTP 400 .*max_tokens is too large"):
        client.complete(ask("hi"))
    assert len(Scripted.seen) == 1


def test_models_command_shows_a_reachable_server(llama_server_url, tmp_path):
    from typer.testing import CliRunner

    from sekisho.cli import app

    config = tmp_path / "sekisho.toml"
    config.write_text(
        f'[models]\ndefault = "onprem"\n[models.backends.onprem]\nkind = "openai"\n'
        f'base_url = "{llama_server_url}"\nmodel = "{LLAMA_SERVER_MODEL}"\nlocal = true\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["--config", str(config), "models", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert (row["name"], row["kind"], row["model"], row["local"], row["ok"]) == (
        "onprem", "openai", LLAMA_SERVER_MODEL, True, True)
    table = CliRunner().invoke(app, ["--config", str(config), "models"])
    assert table.exit_code == 0 and "利用可" in table.stdout and "構内 local" in table.stdout

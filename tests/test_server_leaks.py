"""Nothing the built-in policy protects reaches an external model in the clear, whatever the form
and whichever door (#19): numbers spaced out, separated by 、 . / or a mix, written in kanji
numerals, broken by zero-width characters, in Arabic-Indic digits or split across two lines;
addresses and 【社外秘】 markings letter-spaced; a number split across two user messages or a user
and an assistant turn; a number in a stop string; a number in a retrieved passage. Each goes
through the CLI (`sekisho ask`), the native API (/api/ask) and the OpenAI gateway (plain and
streamed, with and without retrieval) to a model server that records every body it receives, and
a detector written here, independent of the guard, looks for the value in what it received.

The policy may mask the value, block the request or route it to a local model: any is fine, as
long as the value never arrives."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sekisho.cli import app as cli
from sekisho.ingest import ingest_bytes
from sekisho.retrieval import open_knowledge_base
from server_fixtures.leaks import DAICHO, DOCUMENTS, EVASIONS, GOMI, MARKED, MY_NUMBER, PHONE, leaks
from server_fixtures.support import make_settings, run_server
from server_fixtures.vendor import backend_toml, vendor  # noqa: F401


@pytest.fixture(scope="module")
def server(tmp_path_factory, vendor):
    folder = tmp_path_factory.mktemp("leaks")
    # Every question reaches its passages (no "not in the documents" short cut), so that the
    # passages, not only the question, travel to the vendor.
    settings = make_settings(folder, extra_toml=backend_toml(vendor[0], "vendor", local=False)
                             + '[models.backends.extractive]\nkind = "extractive"\n',
                             retrieval_toml="min_score = 0.0")
    with open_knowledge_base(settings) as kb:
        for name, (text, tags) in DOCUMENTS.items():
            ingest_bytes(kb, name, text.encode("utf-8"), tags=tags)
    yield from run_server(settings)


def _chat(client, model: str, messages: list[dict], *, stream: bool, **extra) -> tuple[int, str]:
    body = {"model": model, "messages": messages, "stream": stream, **extra}
    if not stream:
        response = client.post("/v1/chat/completions", json=body)
        return response.status_code, response.text
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        return response.status_code, response.read().decode()


def _doors(server, *, tags: tuple[str, ...] = ()):
    """Each door as a function of a question, for a caller holding `tags`: (door name, ask) ->
    (status or exit code, response text)."""
    config = str(Path(server.settings.base_dir) / "sekisho.toml")
    runner = CliRunner()
    key = server.key("user", "leak-test", tags)
    # The CLI's operator sees every document; --tag narrows it as a key's tags do.
    narrowed = [arg for tag in tags or ("一般",) for arg in ("--tag", tag)]

    def cli_ask(text: str) -> tuple[int, str]:
        result = runner.invoke(cli, ["--config", config, "ask", text, "--model", "vendor", "--json", *narrowed])
        return result.exit_code, result.output

    def client():
        return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    def api_ask(text: str) -> tuple[int, str]:
        with client() as client_:
            response = client_.post("/api/ask", json={"question": text, "backend": "vendor"})
            return response.status_code, response.text

    def gateway(model: str, stream: bool):
        def call(text: str) -> tuple[int, str]:
            with client() as client_:
                return _chat(client_, model, [{"role": "user", "content": text}], stream=stream)
        return call

    return {"cli ask": cli_ask, "api ask": api_ask, "v1 chat": gateway("vendor", False),
            "v1 chat stream": gateway("vendor", True), "v1 rag": gateway("sekisho-rag/vendor", False),
            "v1 rag stream": gateway("sekisho-rag/vendor", True)}


DOORS = ["cli ask", "api ask", "v1 chat", "v1 chat stream", "v1 rag", "v1 rag stream"]


@pytest.mark.parametrize("door", DOORS)
def test_no_evasion_reaches_the_vendor(server, vendor, door):
    _, received = vendor
    ask = _doors(server)[door]
    received.new()
    reached, leaked = 0, []
    for family, form, value in EVASIONS:
        status, text = ask(f"{GOMI}{form}")
        assert status in (0, 1, 200, 400), f"{door} / {family}: {status} {text[:300]}"
        bodies = received.new()
        reached += bool(bodies)
        leaked += [f"{door} / {family}: {body}" for body in leaks(bodies, value)]
    assert not leaked, "\n".join(leaked)
    # Masked forms (phones, addresses) still reach the vendor, so the test saw real traffic.
    assert reached >= 10


def test_a_marking_spelt_apart_routes_every_door_to_the_local_model(server, vendor):
    _, received = vendor
    received.new()
    for door, ask in _doors(server).items():
        status, text = ask(MARKED)
        assert status in (0, 200), f"{door}: {status} {text[:300]}"
        assert received.new() == [], f"{door}: a 社外秘 request reached the external model"


@pytest.mark.parametrize("stream", [False, True])
def test_numbers_split_across_turns_and_stop_strings_do_not_arrive(server, vendor, stream):
    _, received = vendor
    conversations = [
        ("two user messages", [{"role": "user", "content": "前半は1234 5678"},
                               {"role": "user", "content": "後半は9018 です。控えてください"}], {}, MY_NUMBER),
        ("user and assistant", [{"role": "user", "content": "電話番号の前半は090-8765"},
                                {"role": "assistant", "content": "承知しました。後半をどうぞ。"},
                                {"role": "user", "content": "4321 です"}], {}, PHONE),
        ("assistant turn alone", [{"role": "assistant", "content": "お客様の番号は〇九〇八七六五四三二一ですね"},
                                  {"role": "user", "content": "はい"}], {}, PHONE),
        ("stop string", [{"role": "user", "content": "ご挨拶をお願いします"}],
         {"stop": ["090-8765-4321"]}, PHONE),
        ("stop strings split", [{"role": "user", "content": "ご挨拶をお願いします"}],
         {"stop": ["マイナンバー 1234 5678", "9018"]}, MY_NUMBER),
    ]
    received.new()
    with server.client("user") as client:
        for name, messages, extra, value in conversations:
            status, text = _chat(client, "vendor", messages, stream=stream, **extra)
            assert status in (200, 400), f"{name}: {status} {text[:300]}"
            assert not leaks(received.new(), value), name


def test_a_retrieved_passage_is_masked_or_blocked_through_every_door(server, vendor):
    """The passage holds 〇九〇・八七六五・四三二一 (masked for the vendor) and, in the staff
    register, 一二三四五六七八九〇一八 (a My Number: the request is blocked)."""
    _, received = vendor
    doors = _doors(server, tags=("人事",))
    for door in ("cli ask", "api ask", "v1 rag", "v1 rag stream"):
        received.new()
        status, text = doors[door](GOMI)
        assert status in (0, 200), f"{door}: {status} {text[:300]}"
        bodies = received.new()
        assert bodies, f"{door}: the vendor was never asked, so nothing was tested"
        assert not leaks(bodies, PHONE), door
        assert any("電話番号_" in json.dumps(b, ensure_ascii=False) for b in bodies), door
        status, text = doors[door](DAICHO)
        assert status in (1, 400), f"{door}: a passage holding a My Number was not blocked: {text[:300]}"
        assert received.new() == [], door

"""Energy per answer through the request path: a model server elsewhere cannot be measured here
(joules null, source "remote"), whole or streamed; the same server declared local on loopback is
charged its process's CPU time; a blocked request called no model and took none."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from sekisho.config import load_settings
from sekisho.identity import Principal, Role
from sekisho.models import ChatRequest, Message
from sekisho.request import RequestPath
from server_fixtures.support import MY_NUMBER, start_fake

ALICE = Principal("alice", Role.USER)


@pytest.fixture(scope="module")
def model_server() -> Iterator[str]:
    yield from start_fake(0.0, chunks="4")


@pytest.fixture
def path(tmp_path, model_server) -> Iterator[RequestPath]:
    config = tmp_path / "sekisho.toml"
    config.write_text(
        '[audit]\npath = "audit.db"\nkey_path = "signing.key"\n'
        f'[models.backends.vendor]\nkind = "openai"\nbase_url = "{model_server}/v1"\nmodel = "fake"\n'
        f'[models.backends.onprem]\nkind = "openai"\nbase_url = "{model_server}/v1"\nmodel = "fake"\nlocal = true\n',
        encoding="utf-8")
    request_path = RequestPath(load_settings(config, environ={}))
    yield request_path
    request_path.close()


def _ask(text: str = "窓口の受付時間を教えてください。") -> ChatRequest:
    return ChatRequest([Message("user", text)], max_tokens=32)


def _recorded(path: RequestPath, governed) -> dict:
    energy = path.audit.get(governed.audit_seq).record["energy"]
    assert energy == governed.energy.to_json()  # the caller is told what the log keeps
    return energy


def test_a_remote_backend_is_recorded_as_not_measurable(path):
    whole = path.complete(_ask(), backend="vendor", principal=ALICE)

    async def streamed():
        stream = path.astream(_ask(), backend="vendor", principal=ALICE)
        text = "".join([piece async for piece in stream])
        return text, stream.result

    text, governed = asyncio.run(streamed())
    assert whole.status == "ok" and governed.status == "ok" and text
    for outcome in (whole, governed):
        energy = _recorded(path, outcome)
        assert energy["joules"] is None and energy["source"] == "remote" and "remote" in energy["label"]


def test_a_loopback_server_declared_local_is_measured(path):
    governed = asyncio.run(path.acomplete(_ask(), backend="onprem", principal=ALICE))
    energy = _recorded(path, governed)
    assert energy["source"] == "estimate" and isinstance(energy["joules"], float) and "loopback" in energy["label"]


def test_a_blocked_request_took_no_energy(path):
    # The built-in policy blocks a My Number bound for an external model before any call.
    governed = path.complete(_ask(f"マイナンバーは{MY_NUMBER}です。"), backend="vendor", principal=ALICE)
    assert governed.status == "blocked"
    assert _recorded(path, governed) == {"joules": 0.0, "source": "remote", "label": "モデル呼び出しなし (no model call)"}

"""Governed requests run concurrently: against a model server that takes 1 s and any number of
requests at once, ten requests through sekisho take about one second, not ten; a client that goes
away mid-stream cancels the model call; beyond the in-flight limit the answer is 503 at once; and
every door (CLI, native API, OpenAI gateway plain and streamed, arena) leaves through the request
path's one audit exit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sekisho.audit.log import AuditLog
from server_fixtures.support import make_settings, run_server, start_fake
from server_fixtures.vendor import backend_toml


@pytest.fixture(scope="module")
def slow_model() -> Iterator[str]:
    yield from start_fake(1.0, chunks="20")


@pytest.fixture(scope="module")
def server(tmp_path_factory, slow_model):
    folder = tmp_path_factory.mktemp("concurrency")
    yield from run_server(make_settings(folder, extra_toml=backend_toml(slow_model)))


async def _chat(url: str, key: str, n: int, model: str = "slow") -> list[tuple[int, float]]:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:

        async def one(i: int) -> tuple[int, float]:
            started = time.perf_counter()
            r = await client.post("/v1/chat/completions",
                                  json={"model": model, "messages": [{"role": "user", "content": f"質問{i}"}]})
            return r.status_code, time.perf_counter() - started

        return await asyncio.gather(*(one(i) for i in range(n)))


def test_ten_concurrent_requests_take_about_one_model_delay(server):
    started = time.perf_counter()
    results = asyncio.run(_chat(server.url, server.keys["user"], 10))
    elapsed = time.perf_counter() - started
    assert [status for status, _ in results] == [200] * 10
    # One request takes the model's 1.0 s; ten in a row would take 10 s.
    assert elapsed < 3.0, f"10 requests took {elapsed:.1f} s"


def test_a_client_leaving_mid_stream_cancels_the_model_call(server, slow_model):
    before = httpx.get(slow_model + "/stats").json()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.keys['user']}"}) as client:
        with client.stream("POST", "/v1/chat/completions", json={
                "model": "slow", "stream": True,
                "messages": [{"role": "user", "content": "長い回答をください"}]}) as response:
            assert response.status_code == 200
            next(response.iter_lines())  # the first event arrived; then the client goes away
    deadline = time.monotonic() + 10
    while (stats := httpx.get(slow_model + "/stats").json())["streams_cancelled"] == before["streams_cancelled"]:
        assert time.monotonic() < deadline, f"the model server's stream was not cancelled: {stats}"
        time.sleep(0.1)
    assert stats["streams_finished"] == before["streams_finished"]
    deadline = time.monotonic() + 10
    log = AuditLog(Path(server.settings.base_dir) / "audit.db")
    while not (cancelled := [e.record for e in log.query(kind="chat") if e.record["status"] == "cancelled"]):
        assert time.monotonic() < deadline, "the cancelled stream was not audited"
        time.sleep(0.1)
    assert cancelled[0]["backend"]["used"] == "slow" and cancelled[0]["shown_chars"] >= 0
    log.close()


def test_beyond_the_in_flight_limit_the_answer_is_503_at_once(tmp_path, slow_model):
    settings = make_settings(tmp_path, extra_toml=backend_toml(slow_model))
    settings = settings.model_copy(update={"server": settings.server.model_copy(update={"max_in_flight": 2})})
    served = run_server(settings)
    live = next(served)
    try:
        async def scenario():
            async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {live.keys['user']}"},
                                         timeout=60) as client:
                body = {"model": "slow", "messages": [{"role": "user", "content": "こんにちは"}]}
                slow = [asyncio.ensure_future(client.post("/v1/chat/completions", json=body)) for _ in range(2)]
                await asyncio.sleep(0.3)
                started = time.perf_counter()
                refused = await client.post("/v1/chat/completions", json=body)
                refused_after = time.perf_counter() - started
                return [r.status_code for r in await asyncio.gather(*slow)], refused, refused_after

        statuses, refused, refused_after = asyncio.run(scenario())
        assert statuses == [200, 200]
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        assert refused.json()["error"]["code"] == "server_busy" and refused_after < 0.5
    finally:
        next(served, None)


def test_a_backend_timeout_is_a_clear_audited_error_not_a_hung_worker(tmp_path):
    fake = start_fake(5.0)
    url = next(fake)
    settings = make_settings(tmp_path, extra_toml=backend_toml(url).replace("timeout_s = 30", "timeout_s = 1"))
    served = run_server(settings)
    live = next(served)
    try:
        with live.client("user") as client:
            started = time.perf_counter()
            r = client.post("/v1/chat/completions", json={"model": "slow",
                                                          "messages": [{"role": "user", "content": "こんにちは"}]})
            took = time.perf_counter() - started
            message = r.json()["error"]["message"]
            assert r.status_code == 502 and "backend 'slow'" in message and "1 s" in message
            assert took < 4.0  # the bound, not the model's 5 s
            assert client.get("/v1/models").status_code == 200  # the worker is free
    finally:
        next(served, None)
        next(fake, None)
    log = AuditLog(tmp_path / "audit.db")
    errors = [e.record for e in log.query(kind="chat") if e.record["status"] == "error"]
    assert len(errors) == 1 and errors[0]["error"] == message

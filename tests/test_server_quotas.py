"""Quotas through a real server: a used-up quota is a 429 naming it and when it resets (with
Retry-After, in OpenAI's error shape, audited), for streams too and before they start; the next
window allows again (the quotas' clock is injected); a key's own limit tighter than its role's
wins; streamed answers are charged; /api/me/usage, the admins' view, the pages and the CLI show
the same numbers; and the counts survive a restart. The windows and the limits that apply are
also checked without a server."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import openai
import pytest
from typer.testing import CliRunner

from sekisho.audit.log import AuditLog
from sekisho.cli import app as cli
from sekisho.config import ConfigError, QuotaLimits, QuotasConfig, load_settings
from sekisho.db import open_database
from sekisho.identity import Principal, Role
from sekisho.server.keys import KeyStore
from sekisho.server.quotas import QuotaExceeded, Quotas
from server_fixtures.support import CITY, make_settings, run_server, start_fake, wait_for_job

TOKYO = ZoneInfo("Asia/Tokyo")
QUOTAS_TOML = """
[organisation]
timezone = "Asia/Tokyo"
[quotas.roles.user]
tokens_per_day = 100000
tokens_per_month = 2000000
"""


def jst(*when: int) -> float:
    return datetime(*when, tzinfo=TOKYO).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quotas")
    served = run_server(make_settings(folder, extra_toml=QUOTAS_TOML))
    live = next(served)
    with live.client("admin") as admin:
        job = admin.post("/api/documents", files=[("files", ("juminhyo.md", (CITY / "juminhyo.md").read_bytes()))])
        wait_for_job(admin, job.json()["id"])
    yield live
    next(served, None)


@pytest.fixture
def clock(server):
    """The server's quota clock, fixed at 2026-12-07 15:30 JST for the test; moved by hand."""
    quotas = server.app.state.sekisho.runtime.quotas
    real = quotas.clock
    quotas.clock = Clock(jst(2026, 12, 7, 15, 30))
    yield quotas.clock
    quotas.clock = real


def _client(server, secret: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"}, timeout=60)


def _chat(client: httpx.Client, model: str = "extractive", **extra) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": model, **extra,
                                                     "messages": [{"role": "user", "content": "こんにちは"}]})


def _total(response: httpx.Response) -> int:
    return response.json()["usage"]["total_tokens"]


def test_tokens_per_day_used_up_is_a_429_naming_the_quota_and_when_it_resets(server, clock):
    secret = server.key("user", "daily", limits=QuotaLimits(tokens_per_day=100))
    with _client(server, secret) as client:
        first, second = _chat(client), _chat(client)
        # ~95 tokens each: the second is admitted with 5 left and passes the limit by one request.
        assert first.status_code == second.status_code == 200 and _total(first) < 100 < _total(first) + _total(second)
        refused = _chat(client)
        assert refused.status_code == 429
        assert refused.json()["error"] == {
            "message": "1日あたりのトークン数 (tokens per day) 100 を使い切りました。リセット: 2026-12-08 00:00 JST",
            "type": "rate_limit_error", "param": None, "code": "insufficient_quota"}
        assert refused.headers["retry-after"] == str(8 * 3600 + 30 * 60)
        # Every door is refused alike: the native answer, a conversation, an app.
        assert client.post("/api/ask", json={"question": "住民票の写しの手数料は？"}).status_code == 429
        conversation = client.post("/api/conversations", json={}).json()["id"]
        assert client.post(f"/api/conversations/{conversation}/messages", json={"content": "手数料は？"}).status_code == 429
        assert client.post("/api/apps/proofread/run", json={"inputs": {"text": "確認して下さい。"}}).status_code == 429
        clock.now = jst(2026, 12, 8, 0, 0, 1)  # the next day in Tokyo
        assert _chat(client).status_code == 200


def test_the_refusal_is_audited(server, clock):
    secret = server.key("user", "audited", limits=QuotaLimits(tokens_per_day=0))
    with _client(server, secret) as client:
        assert _chat(client).status_code == 429
        principal = client.get("/api/me").json()
    log = AuditLog.from_settings(server.settings)
    try:
        denied = [e.record for e in log.query(kind="access.denied", limit=1000)
                  if e.record.get("principal") == f"key:{principal['key_id']}:audited"]
    finally:
        log.close()
    assert len(denied) == 1
    record = denied[0]
    assert record["status"] == 429 and record["path"] == "/v1/chat/completions" and record["role"] == "user"
    assert record["quota"]["name"] == "tokens_per_day" and record["quota"]["limit"] == 0
    assert record["quota"]["scope"] == "key" and record["reason"].startswith("1日あたりのトークン数")


def test_requests_per_minute_then_the_next_minute(server, clock):
    secret = server.key("user", "per-minute", limits=QuotaLimits(requests_per_minute=2))
    with _client(server, secret) as client:
        assert [_chat(client).status_code for _ in range(2)] == [200, 200]
        refused = _chat(client)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert refused.json()["error"]["message"] == ("1分あたりのリクエスト数 (requests per minute) 2 に達しました。"
                                                      "リセット: 2026-12-07 15:31 JST")
        assert refused.headers["retry-after"] == "60"
        # A refused request is not counted: the minute still shows the two that were served.
        assert client.get("/api/me/usage").json()["quotas"][0]["used"] == 2
        clock.now += 60
        assert _chat(client).status_code == 200


def test_a_keys_own_limit_tighter_than_its_roles_wins(server, clock):
    with server.client("admin") as admin:  # a key's own limits are set as an admin creates it
        created = admin.post("/api/keys", json={"role": "user", "name": "tight",
                                                "limits": {"tokens_per_day": 50, "tokens_per_month": 10**9}})
    assert created.status_code == 201 and created.json()["limits"]["tokens_per_day"] == 50
    tight = created.json()["secret"]
    loose = server.key("user", "loose", limits=QuotaLimits(tokens_per_day=10**9))
    with _client(server, tight) as client:
        quotas = {q["name"]: q for q in client.get("/api/me/usage").json()["quotas"]}
        assert quotas["tokens_per_day"]["limit"] == 50 and quotas["tokens_per_day"]["scope"] == "key"
        assert quotas["tokens_per_month"]["limit"] == 2_000_000 and quotas["tokens_per_month"]["scope"] == "role"
        assert quotas["requests_per_minute"]["limit"] is None and quotas["requests_per_minute"]["scope"] is None
        assert _chat(client).status_code == 200
        assert "(tokens per day) 50 を使い切りました" in _chat(client).json()["error"]["message"]
    with _client(server, loose) as client:
        day = client.get("/api/me/usage").json()["quotas"][1]
        assert day["limit"] == 100_000 and day["scope"] == "role"  # the role's is tighter than this key's


def test_streamed_answers_are_charged_and_refused_before_they_start(server, clock):
    secret = server.key("user", "streamer", limits=QuotaLimits(tokens_per_day=60))
    with _client(server, secret) as client:
        with client.stream("POST", "/v1/chat/completions", json={
                "model": "extractive", "stream": True, "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "こんにちは"}]}) as response:
            assert response.status_code == 200
            chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
        streamed = chunks[-1]["usage"]["total_tokens"]
        usage = client.get("/api/me/usage").json()
        assert streamed > 60 and usage["quotas"][1]["used"] == streamed and usage["requests_today"] == 1
        with client.stream("POST", "/v1/chat/completions", json={
                "model": "extractive", "stream": True, "messages": [{"role": "user", "content": "こんにちは"}]}) as refused:
            assert refused.status_code == 429 and refused.headers["content-type"].startswith("application/json")
        sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=secret, max_retries=0)
        with pytest.raises(openai.RateLimitError) as caught:
            sdk.chat.completions.create(model="extractive", messages=[{"role": "user", "content": "こんにちは"}])
        assert caught.value.code == "insufficient_quota" and "tokens per day" in caught.value.message


def test_a_streamed_conversation_turn_is_charged(server, clock):
    secret = server.key("user", "chatter")
    with _client(server, secret) as client:
        conversation = client.post("/api/conversations", json={}).json()["id"]
        with client.stream("POST", f"/api/conversations/{conversation}/messages",
                           json={"content": "住民票の写しの手数料は？", "stream": True}) as response:
            assert response.status_code == 200 and "event: done" in response.read().decode()
        record = AuditLog.from_settings(server.settings)
        try:
            turn = client.get(f"/api/conversations/{conversation}").json()["turns"][0]
            tokens = record.get(turn["audit_seq"]).record["tokens"]
        finally:
            record.close()
        assert client.get("/api/me/usage").json()["quotas"][1]["used"] == tokens["prompt"] + tokens["completion"] > 0


def test_a_stream_its_reader_leaves_is_charged_for_what_was_made(tmp_path):
    model = start_fake(2.0, chunks="20")
    url = next(model)
    served = run_server(make_settings(tmp_path, extra_toml=f'[models.backends.slow]\nkind = "openai"\n'
                                                           f'base_url = "{url}/v1"\nmodel = "fake"\nlocal = true\n'))
    try:
        live = next(served)
        with _client(live, live.keys["user"]) as client:
            with client.stream("POST", "/v1/chat/completions", json={
                    "model": "slow", "stream": True, "messages": [{"role": "user", "content": "窓口の受付時間は？"}]}) as r:
                next(r.iter_lines())  # the role chunk, then the reader leaves
            deadline = time.monotonic() + 30
            while (used := client.get("/api/me/usage").json()["quotas"][1]["used"]) == 0:
                assert time.monotonic() < deadline, "the abandoned stream was never charged"
                time.sleep(0.1)
        log = AuditLog.from_settings(live.settings)
        try:
            assert [e.record["status"] for e in log.query(kind="chat", limit=10)] == ["cancelled"]
        finally:
            log.close()
        assert used > 0
    finally:
        next(served, None)
        next(model, None)


def test_usage_is_visible_to_the_user_the_admins_the_pages_and_the_cli(server, clock):
    secret = server.key("user", "visible", limits=QuotaLimits(requests_per_minute=30, tokens_per_day=5000))
    with _client(server, secret) as client:
        spent = sum(_total(_chat(client)) for _ in range(3))
        usage = client.get("/api/me/usage").json()
        assert client.get("/api/usage/quotas").status_code == 403  # everyone's is for admins
    assert usage["principal"].endswith(":visible") and usage["role"] == "user"
    assert usage["requests_today"] == usage["requests_this_month"] == 3
    assert usage["quotas"] == [
        {"name": "requests_per_minute", "label": "1分あたりのリクエスト数 (requests per minute)", "used": 3, "limit": 30,
         "remaining": 27, "scope": "key", "resets_at": "2026-12-07T15:31:00+09:00"},
        {"name": "tokens_per_day", "label": "1日あたりのトークン数 (tokens per day)", "used": spent, "limit": 5000,
         "remaining": 5000 - spent, "scope": "key", "resets_at": "2026-12-08T00:00:00+09:00"},
        {"name": "tokens_per_month", "label": "1か月あたりのトークン数 (tokens per month)", "used": spent,
         "limit": 2_000_000, "remaining": 2_000_000 - spent, "scope": "role", "resets_at": "2027-01-01T00:00:00+09:00"}]
    with server.client("admin") as admin:
        everyone = admin.get("/api/usage/quotas").json()
    assert everyone["timezone"] == "Asia/Tokyo"
    assert [u for u in everyone["principals"] if u["principal"] == usage["principal"]] == [usage]
    with httpx.Client(base_url=server.url, follow_redirects=False) as browser:
        assert browser.post("/login", data={"key": secret}).status_code == 303
        page = browser.get("/quota")
        panel = browser.get("/ui/quota")
    assert page.status_code == 200 and f"{spent:,} / 5,000" in page.text and "全員" not in page.text
    assert panel.status_code == 200 and "3 / 30" in panel.text
    with httpx.Client(base_url=server.url, follow_redirects=False) as browser:
        assert browser.post("/login", data={"key": server.keys["admin"]}).status_code == 303
        assert usage["principal"] in browser.get("/quota").text  # the admins' table
    shown = CliRunner().invoke(cli, ["--config", str(Path(server.settings.base_dir) / "sekisho.toml"), "quota", "show",
                                     "--user", usage["key_id"], "--json"])
    assert shown.exit_code == 0, shown.output
    # The CLI reads the same counters with the real clock: today's window there is another day.
    assert json.loads(shown.stdout)[0]["principal"] == usage["principal"]


def test_counts_survive_a_restart(tmp_path):
    folder = tmp_path / "restart"
    folder.mkdir()
    settings = make_settings(folder, extra_toml=QUOTAS_TOML)
    cli_config = ["--config", str(folder / "sekisho.toml")]
    runner = CliRunner()
    created = runner.invoke(cli, [*cli_config, "keys", "create", "--role", "user", "--name", "kept",
                                  "--tokens-per-day", "150", "--requests-per-minute", "100"])
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    served = run_server(settings)
    first = next(served)
    with first.client("admin") as admin:
        listed = {k["name"]: k for k in admin.get("/api/keys").json()["keys"]}
    assert listed["kept"]["limits"] == {"requests_per_minute": 100, "tokens_per_day": 150, "tokens_per_month": None}
    with _client(first, secret) as client:
        spent = _total(_chat(client))
        before = client.get("/api/me/usage").json()
    next(served, None)  # stopped

    again = run_server(settings)
    try:
        with _client(next(again), secret) as client:
            after = client.get("/api/me/usage").json()
            more = _total(_chat(client))  # admitted: 150 - spent left
            refused = _chat(client)
    finally:
        next(again, None)
    # (The minute's count is compared too: both servers counted in the same minute, or the
    # minute turned and the day's figures alone are the same.)
    assert after["quotas"][1:] == before["quotas"][1:] and after["requests_today"] == before["requests_today"] == 1
    assert before["quotas"][1]["used"] == spent and refused.status_code == 429
    shown = runner.invoke(cli, [*cli_config, "quota", "show", "--json"])
    assert shown.exit_code == 0, shown.output
    kept = [u for u in json.loads(shown.stdout) if u["principal"].endswith(":kept")]
    assert kept[0]["quotas"][1]["used"] == spent + more and kept[0]["quotas"][1]["limit"] == 150
    assert kept[0]["requests_today"] == 2  # the refused request is not counted


# --- without a server ---------------------------------------------------------------------------

@pytest.fixture
def access(tmp_path):
    db = open_database(tmp_path / "access.db")
    keys = KeyStore(db)
    yield keys
    keys.close()


def test_windows_follow_the_organisations_time_zone(access):
    alice = Principal("oidc:alice", Role.USER)
    tokyo = Quotas(access.db, QuotasConfig(users={"oidc:alice": QuotaLimits(tokens_per_day=10, tokens_per_month=25)}),
                   clock=Clock(jst(2026, 12, 31, 23, 59, 30)))
    tokyo.admit(alice, None)
    tokyo.charge(alice, 10)
    with pytest.raises(QuotaExceeded, match="リセット: 2027-01-01 00:00 JST") as caught:
        tokyo.admit(alice, None)
    assert caught.value.headers == {"Retry-After": "30"} and caught.value.use.scope == "user"
    tokyo.clock.now = jst(2027, 1, 1, 0, 0)  # a new day and a new month in Tokyo
    tokyo.admit(alice, None)
    assert tokyo.usage("oidc:alice", "user", None).quota("tokens_per_month").used == 0
    tokyo.charge(alice, 25)
    tokyo.clock.now = jst(2027, 1, 2, 9, 0)  # the day is new, the month's 25 are spent
    with pytest.raises(QuotaExceeded, match=r"\(tokens per month\) 25 を使い切りました。リセット: 2027-02-01 00:00 JST"):
        tokyo.admit(alice, None)
    # 2027-01-01 05:00 in Tokyo is still 2026-12-31 in UTC: an organisation on UTC has not turned the day.
    bob = Principal("oidc:bob", Role.USER)
    utc = Quotas(access.db, QuotasConfig(users={"oidc:bob": QuotaLimits(tokens_per_day=10)}), timezone="UTC",
                 clock=Clock(jst(2026, 12, 31, 20, 0)))
    utc.admit(bob, None)
    utc.charge(bob, 10)
    utc.clock.now = jst(2027, 1, 1, 5, 0)
    with pytest.raises(QuotaExceeded, match="リセット: 2027-01-01 00:00 UTC"):
        utc.admit(bob, None)


def test_the_tightest_of_key_user_and_role_applies(access):
    key, _ = access.create(Role.USER, "k", limits=QuotaLimits(requests_per_minute=5, tokens_per_day=900))
    config = QuotasConfig(roles={"user": QuotaLimits(requests_per_minute=3, tokens_per_day=1000)},
                          users={key.principal().name: QuotaLimits(tokens_per_month=700, tokens_per_day=800)})
    limits = Quotas(access.db, config).limits(key.principal().name, "user", key)
    assert {name: (limit.value, limit.scope) for name, limit in limits.items()} == {
        "requests_per_minute": (3, "role"), "tokens_per_day": (800, "user"), "tokens_per_month": (700, "user")}
    assert Quotas(access.db, QuotasConfig()).limits("cli:root", "admin", None) == {
        "requests_per_minute": None, "tokens_per_day": None, "tokens_per_month": None}


def test_configuration_mistakes_are_one_line(tmp_path, access):
    with pytest.raises(ConfigError, match="quotas.roles.users: no such role"):
        Quotas(access.db, QuotasConfig(roles={"users": QuotaLimits(tokens_per_day=1)}))
    config = tmp_path / "sekisho.toml"
    config.write_text('[organisation]\ntimezone = "Asia/Tokio"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="organisation.timezone: .*unknown time zone 'Asia/Tokio'"):
        load_settings(config, environ={})
    config.write_text("[quotas.roles.user]\ntokens_per_day = -1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="quotas.roles.user.tokens_per_day"):
        load_settings(config, environ={})

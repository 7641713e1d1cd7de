"""The server's parts without HTTP: API keys (shown once, stored hashed, bound to a role and tags,
revocable), the rate limiter, the serve queue's admission limit, and the `keys` and `serve`
commands."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from conftest import run_sql
from sekisho.cli import app as cli
from sekisho.db import SQLiteDatabase, open_database
from sekisho.identity import Role
from sekisho.server.keys import KeyStore, KeyStoreError
from sekisho.server.security import RateLimiter


@pytest.fixture
def store(database_target):
    """The access database as an SQLite file and on PostgreSQL."""
    s = KeyStore(open_database(database_target))
    yield s
    s.close()


def test_secret_authenticates_and_is_not_stored(store, database_target):
    key, secret = store.create(Role.USER, "窓口端末", ("人事",))
    assert store.authenticate(secret) == key
    assert key.principal().role is Role.USER and key.principal().tags == ("人事",)
    rows = run_sql(database_target, "SELECT * FROM api_keys")
    flat = " ".join(str(v) for row in rows for v in row)
    assert secret not in flat
    assert secret.split("_", 1)[1] not in flat  # not even the random part


def test_wrong_or_malformed_secrets_fail(store):
    _, secret = store.create(Role.ADMIN)
    assert store.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert store.authenticate("sk-skh-") is None
    assert store.authenticate("Bearer " + secret) is None
    assert store.authenticate("") is None


def test_each_key_is_unique(store):
    secrets_ = {store.create(Role.USER)[1] for _ in range(20)}
    assert len(secrets_) == 20


def test_revoked_key_stops_working_and_cannot_be_revoked_twice(store):
    key, secret = store.create(Role.REVIEWER, "r")
    store.revoke(key.id)
    assert store.authenticate(secret) is None
    assert [k.active for k in store.list()] == [False]
    with pytest.raises(KeyStoreError, match="already revoked"):
        store.revoke(key.id)
    with pytest.raises(KeyStoreError, match="no such key"):
        store.revoke("ffffffff")


def test_rate_limiter_allows_the_budget_then_refuses(store):
    limiter = RateLimiter(store.db, per_minute=3)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("a")
    assert 0 < wait <= 20.0  # one token every 20 s
    assert limiter.take("b") == 0.0  # buckets are per key


def test_rate_limit_holds_across_processes_sharing_the_access_database(store, database_target):
    # Two worker processes are two handles on one database: the budget is shared, not doubled.
    other = RateLimiter(open_database(database_target), per_minute=4)
    mine = RateLimiter(store.db, per_minute=4)
    assert [mine.take("k"), other.take("k"), mine.take("k"), other.take("k")] == [0.0] * 4
    assert mine.take("k") > 0 and other.take("k") > 0


def test_cli_create_list_revoke(tmp_path):
    config = tmp_path / "sekisho.toml"
    config.write_text('[audit]\npath = "audit.db"\n', encoding="utf-8")
    runner = CliRunner()
    created = runner.invoke(cli, ["--config", str(config), "keys", "create", "--role", "auditor",
                                  "--name", "監査室", "--tag", "財務"])
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("sk-skh-")
    store = KeyStore(SQLiteDatabase(tmp_path / "audit.keys.db"))
    key = store.authenticate(secret)
    store.close()
    assert key is not None and key.role is Role.AUDITOR and key.tags == ("財務",)

    listed = runner.invoke(cli, ["--config", str(config), "keys", "list"])
    assert listed.exit_code == 0 and key.id in listed.stdout and secret not in listed.stdout

    revoked = runner.invoke(cli, ["--config", str(config), "keys", "revoke", key.id])
    assert revoked.exit_code == 0
    again = runner.invoke(cli, ["--config", str(config), "keys", "revoke", key.id])
    assert again.exit_code == 1 and "already revoked" in again.stderr and "Traceback" not in again.output


def test_cli_rejects_unknown_role(tmp_path):
    config = tmp_path / "sekisho.toml"
    config.write_text('[audit]\npath = "audit.db"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "keys", "create", "--role", "root"])
    assert result.exit_code == 1 and "--role 'root'" in result.stderr


def test_serve_on_a_busy_port_is_one_line_and_exit_1(tmp_path):
    import socket

    config = tmp_path / "sekisho.toml"
    config.write_text('[audit]\npath = "audit.db"\n', encoding="utf-8")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--config", str(config), "--port", str(port)])
    assert result.exit_code == 1 and f"127.0.0.1:{port}: cannot listen" in result.stderr
    assert "Traceback" not in result.output


def test_requests_beyond_the_in_flight_limit_are_refused_at_once(tmp_path):
    import asyncio

    from sekisho.config import load_settings
    from sekisho.server.runtime import Busy, Runtime

    runtime = Runtime(load_settings(environ={}), max_in_flight=2)

    async def scenario():
        release = asyncio.Event()

        async def request(name):
            async with runtime.admitted(None):
                await release.wait()
                return name

        first, second = asyncio.ensure_future(request("first")), asyncio.ensure_future(request("second"))
        await asyncio.sleep(0.05)
        with pytest.raises(Busy, match="server busy: 2 requests in flight"):
            await request("third")
        release.set()
        assert [await first, await second] == ["first", "second"]
        assert await request("after") == "after"  # the slots were given back

    asyncio.run(scenario())
    runtime.close()


def test_sessions_expire_close_and_are_stored_hashed(store, database_target, monkeypatch):
    import time as clock

    from sekisho.server import security

    sessions = security.Sessions(store.db)
    sid = sessions.open("key1")
    assert sessions.get(sid).key_id == "key1"
    assert security.Sessions(open_database(database_target)).get(sid).key_id == "key1"  # every worker knows it
    assert sid not in str(run_sql(database_target, "SELECT * FROM sessions"))
    assert sessions.close(sid).key_id == "key1"
    assert sessions.get(sid) is None and sessions.close(sid) is None
    old = [sessions.open("key2"), sessions.open("key3")]
    later = clock.time() + security.SESSION_TTL_S + 1
    monkeypatch.setattr(security.time, "time", lambda: later)
    fresh = sessions.open("key4")  # prunes the two expired sessions without anyone asking for them
    [(rows,)] = run_sql(database_target, "SELECT count(*) FROM sessions")
    assert rows == 1 and sessions.get(fresh).key_id == "key4"
    assert all(sessions.get(s) is None for s in old)


def test_a_signed_in_persons_session_keeps_who_they_are(store):
    from sekisho.identity import Principal
    from sekisho.server import security

    person = Principal("oidc:tanaka", Role.USER, ("人事", "財務"))
    sessions = security.Sessions(store.db, ttl_s=60)
    sid = sessions.open(principal=person, display="田中 太郎")
    assert sessions.get(sid) == security.Session(key_id=None, principal=person, display="田中 太郎")
    with pytest.raises(ValueError):
        sessions.open("key1", principal=person)
    assert security.csrf_matches(sid, security.csrf_token(sid))
    assert not security.csrf_matches(sid, security.csrf_token(sessions.open("key1")))  # another session's token
    assert not security.csrf_matches(sid, None) and not security.csrf_matches(sid, "")

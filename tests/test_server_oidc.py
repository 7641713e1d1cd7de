"""Sign-in with the organisation's identity provider: the claim -> role/tag mapping and the ID
token's checks on their own, then the whole flow over HTTP against a real OpenID Connect provider
on loopback (oidc-provider-mock, made to check PKCE): PKCE, state and nonce, a person in no mapped
group refused, CSRF on every state-changing request made with the session cookie, sign-out at
sekisho and at the IdP, expired sessions, an unreachable IdP, keys created on the 鍵 page. The
same flow in Chromium: tests/e2e/test_oidc_browser.py."""

from __future__ import annotations

import asyncio
import json
import re
import time
from contextlib import closing
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from sekisho.config import ConfigError, OidcConfig, load_settings
from sekisho.db import SQLiteDatabase
from sekisho.identity import Role
from sekisho.server.oidc import NotMapped, OidcSignIn, SignInFailed, map_claims
from server_fixtures.oidc import CLIENT_ID, PEOPLE, identity_provider, oidc_toml, pick_user
from server_fixtures.support import csrf_of, free_port, make_settings, run_server

# --- claims -> role and tags ---------------------------------------------------------------

CONFIG = OidcConfig.model_validate({
    "issuer": "https://idp.example.lg.jp/realms/city", "client_id": "sekisho",
    "roles": [{"group": "soumu-admins", "role": "admin"}, {"group": "kansa", "role": "auditor"},
              {"group": "jimu-staff", "role": "user"},
              {"claim": "department", "group": "総務課", "role": "reviewer"}],
    "tags": [{"group": "jinji", "tag": "人事"}, {"group": "zaimu", "tag": "財務"},
             {"claim": "department", "group": "人事課", "tag": "人事"}],
})


def test_the_first_matching_role_rule_and_every_matching_tag_rule_apply():
    staff = map_claims({"sub": "u1", "groups": ["zaimu", "jimu-staff", "jinji", "kansa"]}, CONFIG)
    assert staff.name == "oidc:u1"
    assert staff.role is Role.AUDITOR  # "kansa" comes before "jimu-staff" among the rules
    assert staff.tags == ("人事", "財務")
    assert map_claims({"sub": "u2", "groups": ["jimu-staff"]}, CONFIG).tags == ()


def test_rules_read_other_claims_and_single_string_values():
    person = map_claims({"sub": "u3", "groups": "jimu-staff", "department": "人事課"}, CONFIG)
    assert person.role is Role.USER and person.tags == ("人事",)
    clerk = map_claims({"sub": "u4", "department": ["総務課"]}, CONFIG)
    assert clerk.role is Role.REVIEWER


def test_admins_see_every_document_whatever_their_groups():
    assert map_claims({"sub": "a", "groups": ["soumu-admins", "jinji"]}, CONFIG).tags == ("*",)


def test_no_mapped_group_is_refused_unless_a_default_role_is_set():
    with pytest.raises(NotMapped, match=r"oidc:k1 is in no group"):
        map_claims({"sub": "k1", "groups": ["contractors", "Jimu-Staff"]}, CONFIG)  # case matters
    with pytest.raises(NotMapped):
        map_claims({"sub": "k2"}, CONFIG)  # no groups claim at all
    lenient = CONFIG.model_copy(update={"default_role": "user"})
    assert map_claims({"sub": "k1", "groups": ["jinji"]}, lenient).role is Role.USER


def test_the_principal_is_named_by_the_configured_claim():
    by_username = CONFIG.model_copy(update={"name_claim": "preferred_username"})
    assert map_claims({"sub": "f81d4fae", "preferred_username": "sato", "groups": ["jimu-staff"]},
                      by_username).name == "oidc:sato"
    with pytest.raises(SignInFailed, match="no 'preferred_username' claim"):
        map_claims({"sub": "f81d4fae", "groups": ["jimu-staff"]}, by_username)


# --- configuration -------------------------------------------------------------------------

def test_the_client_secret_comes_from_the_environment(tmp_path):
    config = tmp_path / "sekisho.toml"
    config.write_text(oidc_toml("https://idp.example.lg.jp").replace('client_secret = "test-client-secret"\n', ""),
                      encoding="utf-8")
    settings = load_settings(config, environ={"SEKISHO_AUTH__OIDC__CLIENT_SECRET": "from-env",
                                              "SEKISHO_AUTH__SESSION_HOURS": "2"})
    assert settings.auth.oidc.client_secret == "from-env" and settings.auth.session_hours == 2
    assert [r.role for r in settings.auth.oidc.roles] == ["admin", "user"]


@pytest.mark.parametrize("toml, error", [
    ("[auth]\napi_key_login = false\n", "api_key_login = false leaves the web UI without a way in"),
    ('[auth.oidc]\nissuer = "https://idp"\nclient_id = "c"\nscopes = ["profile"]\n', 'scopes must include "openid"'),
    ('[auth.oidc]\nissuer = "https://idp"\nclient_id = "c"\n[[auth.oidc.roles]]\ngroup = "g"\nrole = "root"\n',
     "auth.oidc.roles.0.role"),
    ('[auth]\npublic_url = "sekisho.example.lg.jp"\n', "an http:// or https:// address"),
])
def test_bad_auth_configuration_is_one_clear_line(tmp_path, toml, error):
    config = tmp_path / "sekisho.toml"
    config.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(error)) as refused:
        load_settings(config, environ={})
    assert "\n" not in str(refused.value)


def test_an_issuer_over_plain_http_off_loopback_is_refused(tmp_path):
    config = CONFIG.model_copy(update={"issuer": "http://idp.example.lg.jp"})
    with pytest.raises(ConfigError, match="must be https://"):
        OidcSignIn(config, SQLiteDatabase(tmp_path / "access.db"))


# --- the ID token's checks -----------------------------------------------------------------

ISSUER = "https://idp.example.lg.jp/realms/city"


@pytest.fixture(scope="module")
def signing_keys() -> tuple[RSAKey, RSAKey]:
    return RSAKey.generate_key(2048, parameters={"kid": "idp-1"}), RSAKey.generate_key(2048, parameters={"kid": "idp-1"})


def _relying_party(tmp_path, key: RSAKey) -> OidcSignIn:
    rp = OidcSignIn(CONFIG.model_copy(update={"issuer": ISSUER}), SQLiteDatabase(tmp_path / "access.db"))
    # The discovery document and JWKS as if fetched (Authlib's client keeps them in server_metadata).
    rp.client.server_metadata.update({
        "issuer": ISSUER, "authorization_endpoint": ISSUER + "/auth", "token_endpoint": ISSUER + "/token",
        "jwks_uri": ISSUER + "/certs", "response_types_supported": ["code"], "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"], "jwks": KeySet([key]).as_dict(private=False),
        "_loaded_at": time.time()})
    return rp


def _id_token(key: RSAKey, **changes) -> dict:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "sato", "aud": "sekisho", "iat": now, "exp": now + 300, "nonce": "n-1",
              "groups": ["jimu-staff"], **changes}
    return {"access_token": "at", "token_type": "Bearer",
            "id_token": jwt.encode({"alg": "RS256", "kid": "idp-1"}, {k: v for k, v in claims.items() if v is not None},
                                   key)}


@pytest.mark.parametrize("changes, signer, refused", [
    ({}, 0, None),
    ({}, 1, "bad_signature"),  # signed by a key the IdP does not publish
    ({"aud": "another-app"}, 0, "'aud'"),
    ({"aud": ["another-app"], "azp": "sekisho"}, 0, "'aud'"),  # azp alone does not make it ours
    ({"iss": "https://evil.example"}, 0, "'iss'"),
    ({"exp": int(time.time()) - 600}, 0, "expired"),
    ({"nonce": "n-2"}, 0, "'nonce'"),
    ({"nonce": None}, 0, "nonce"),
])
def test_the_id_token_is_checked(tmp_path, signing_keys, changes, signer, refused):
    rp = _relying_party(tmp_path, signing_keys[0])
    check = rp.verify_id_token(_id_token(signing_keys[signer], **changes), "n-1")
    if refused is None:
        assert asyncio.run(check)["sub"] == "sato"
        return
    with pytest.raises(SignInFailed, match=re.escape(refused)) as rejected:
        asyncio.run(check)
    assert str(rejected.value).startswith("the ID token was rejected:") and "\n" not in str(rejected.value)


# --- the flow against a real provider ------------------------------------------------------

@pytest.fixture(scope="module")
def idp():
    with identity_provider() as provider:
        yield provider


@pytest.fixture(scope="module")
def server(idp, tmp_path_factory):
    yield from run_server(make_settings(tmp_path_factory.mktemp("oidc"), extra_toml=oidc_toml(idp.issuer)))


def _with(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | params
    return urlunsplit(parts._replace(query=urlencode(query)))


def sign_in(server, sub: str, *, at_idp=lambda url: url) -> tuple[httpx.Client, httpx.Response]:
    """A browser's sign-in: sekisho's start, the IdP's page (`at_idp` may alter the URL the
    browser arrives with), the reply back at sekisho's callback."""
    browser = httpx.Client(base_url=server.url, follow_redirects=False, timeout=30)
    start = browser.get("/auth/oidc/start")
    assert start.status_code == 303, start.text
    with httpx.Client(follow_redirects=False, timeout=30) as at_the_idp:
        back = pick_user(at_the_idp, at_idp(start.headers["location"]), sub)
    assert back.status_code == 302 and back.headers["location"].startswith(server.url + "/auth/oidc/callback")
    return browser, browser.get(back.headers["location"])


def audit_records(server, kind: str | None) -> list[dict]:
    entries = server.app.state.sekisho.runtime.audit().query(kind=kind, limit=10_000, newest_first=False)
    return [e.record for e in entries]


def test_a_mapped_person_signs_in_with_the_role_and_tags_of_their_groups(server, idp):
    browser, reply = sign_in(server, "sato")
    with closing(browser):
        assert reply.status_code == 303 and reply.headers["location"] == "/"
        cookie = next(c for c in reply.headers.get_list("set-cookie") if c.startswith("sekisho_session="))
        assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower() and "secure" not in cookie.lower()
        me = browser.get("/api/me").json()
        assert me == {"key_id": None, "principal": "oidc:sato", "name": PEOPLE["sato"]["name"], "role": "user",
                      "tags": ["人事"], "permissions": ["chat", "search"]}
        assert PEOPLE["sato"]["name"] in browser.get("/chat").text
    asked = idp.authorizations[-1]
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert asked["client_id"] == CLIENT_ID and asked["nonce"] and asked["state"] and "openid" in asked["scope"].split()
    assert idp.pkce_refusals == 0
    login = audit_records(server, "session.login")[-1]
    assert login == {"principal": "oidc:sato", "via": "oidc", "issuer": idp.issuer, "role": "user", "tags": ["人事"],
                     "client": "127.0.0.1"}


def test_an_admin_group_makes_an_admin(server):
    browser, reply = sign_in(server, "suzuki")
    with closing(browser):
        me = browser.get("/api/me").json()
    assert me["role"] == "admin" and me["tags"] == ["*"] and "keys" in me["permissions"]


def test_a_person_in_no_mapped_group_is_refused_and_audited(server):
    browser, reply = sign_in(server, "kondo")
    with closing(browser):
        assert reply.status_code == 403
        assert "利用権限がありません" in reply.text and "oidc:kondo is in no group" in reply.text
        assert "Traceback" not in reply.text
        assert browser.get("/api/me").status_code == 401  # no session was opened
    refused = audit_records(server, "session.refused")[-1]
    assert refused["principal"] == "oidc:kondo" and "no group" in refused["reason"]


@pytest.mark.parametrize("param, message", [("state", "state mismatch"), ("nonce", "the ID token was rejected: invalid_claim"),
                                            ("code_challenge", "PKCE verification failed")])
def test_a_tampered_authorization_request_is_refused(server, idp, param, message):
    refusals = idp.pkce_refusals
    browser, reply = sign_in(server, "sato", at_idp=lambda url: _with(url, **{param: "forged" + "x" * 40}))
    with closing(browser):
        assert reply.status_code == 400 and message in reply.text and "ログインできませんでした" in reply.text
        assert browser.get("/api/me").status_code == 401
    assert idp.pkce_refusals == refusals + (param == "code_challenge")
    reason = audit_records(server, "session.refused")[-1]["reason"]
    assert message in reason and (param != "nonce" or "'nonce'" in reason)


def test_a_reply_counts_only_in_the_browser_that_began_and_only_once(server):
    browser = httpx.Client(base_url=server.url, follow_redirects=False, timeout=30)
    with browser, httpx.Client(follow_redirects=False, timeout=30) as at_the_idp:
        back = pick_user(at_the_idp, browser.get("/auth/oidc/start").headers["location"], "sato")
        callback = back.headers["location"]
        with httpx.Client(follow_redirects=False, timeout=30) as elsewhere:  # a reply forwarded to another browser
            stolen = elsewhere.get(callback)
        assert stolen.status_code == 400 and "no sign-in under way in this browser" in stolen.text
        assert browser.get(callback).status_code == 303
        browser.cookies.set("sekisho_signin", "replayed", domain="127.0.0.1", path="/auth/oidc/")
        assert browser.get(callback).status_code == 400


def test_state_changing_requests_with_the_cookie_need_the_csrf_token(server):
    browser, _ = sign_in(server, "sato")
    with closing(browser):
        token = csrf_of(browser.get("/chat").text)
        refused = browser.post("/api/conversations", json={})
        assert refused.status_code == 403 and "CSRF token missing or wrong" in refused.json()["error"]["message"]
        assert browser.post("/api/conversations", json={}, headers={"X-CSRF-Token": "0" * 64}).status_code == 403
        assert browser.post("/api/conversations", json={}, headers={"X-CSRF-Token": token}).status_code == 201
        assert browser.get("/api/conversations").status_code == 200  # reading needs no token
    denied = audit_records(server, "access.denied")[-1]
    assert denied["principal"] == "oidc:sato" and "CSRF" in denied["reason"]
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.keys['user']}"}) as program:
        assert program.post("/api/conversations", json={}).status_code == 201  # a bearer key needs none


def test_sign_out_ends_the_session_here_and_at_the_identity_provider(server, idp):
    browser, _ = sign_in(server, "sato")
    with closing(browser):
        sid = browser.cookies["sekisho_session"]
        token = csrf_of(browser.get("/chat").text)
        assert browser.post("/logout", data={"csrf_token": "wrong"}).status_code == 403
        out = browser.post("/logout", data={"csrf_token": token})
        assert out.status_code == 303
        end = urlsplit(out.headers["location"])
        assert f"{end.scheme}://{end.netloc}" == idp.issuer and end.path == "/oauth2/end_session"
        assert parse_qs(end.query)["post_logout_redirect_uri"] == [server.url + "/login"]
        assert parse_qs(end.query)["client_id"] == [CLIENT_ID]
    with httpx.Client(base_url=server.url, follow_redirects=False, cookies={"sekisho_session": sid}) as old:
        assert old.get("/chat").headers["location"] == "/login?ended=1"  # the old cookie opens nothing
        assert "セッションが終了しました" in old.get("/login?ended=1").text
    assert audit_records(server, "session.logout")[-1] == {"principal": "oidc:sato", "via": "oidc",
                                                           "client": "127.0.0.1"}


def test_no_token_reaches_the_audit_log(server, idp):
    browser, _ = sign_in(server, "sato")
    browser.close()
    secrets = {idp.authorizations[-1][k] for k in ("state", "nonce", "code_challenge")}
    everything = json.dumps(audit_records(server, None), ensure_ascii=False)
    assert not [s for s in secrets if s in everything]
    assert "eyJ" not in everything  # no JWT (an ID or access token) in any record


def test_an_expired_session_goes_back_to_the_login_page(server):
    browser, _ = sign_in(server, "sato")
    with server.app.state.sekisho.sessions.db.write() as conn:  # eight hours later, for the server only
        conn.execute("UPDATE sessions SET expires = ?", (time.time() - 1,))
    with closing(browser):
        assert browser.get("/documents").headers["location"] == "/login?ended=1"
        assert browser.get("/ui/documents/table", headers={"HX-Request": "true"}).headers["hx-redirect"] == \
            "/login?ended=1"


def test_the_login_page_offers_the_organisations_account_first(server):
    with httpx.Client(base_url=server.url) as anon:
        page = anon.get("/login").text
    assert page.index("組織のアカウントでログイン") < page.index("APIキー")


def test_a_key_login_posted_from_another_site_is_refused(server):
    with httpx.Client(base_url=server.url, follow_redirects=False) as browser:
        forged = browser.post("/login", data={"key": server.keys["user"]}, headers={"Sec-Fetch-Site": "cross-site"})
        assert forged.status_code == 403 and "sekisho_session" not in forged.headers.get("set-cookie", "")
        own = browser.post("/login", data={"key": server.keys["user"]}, headers={"Sec-Fetch-Site": "same-origin"})
        assert own.status_code == 303


def test_keys_are_created_and_revoked_on_the_keys_page(server):
    browser, _ = sign_in(server, "suzuki")
    with closing(browser):
        token = csrf_of(browser.get("/keys").text)
        made = browser.post("/ui/keys", data={"name": "窓口ボット", "role": "user", "tags": "人事, 広報"},
                            headers={"X-CSRF-Token": token})
        secret = re.search(r'value="(sk-skh-[^"]+)"', made.text).group(1)
        key_id = secret[len("sk-skh-"):].split("_")[0]
        assert made.headers["hx-trigger"] == "refresh-keys"
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"}) as program:
            assert program.get("/api/me").json()["tags"] == ["人事", "広報"]
            assert program.get("/v1/models").status_code == 200
            bad = browser.post("/ui/keys", data={"role": "root"}, headers={"X-CSRF-Token": token})
            assert "role" in bad.text and 'class="error"' in bad.text
            table = browser.post(f"/ui/keys/{key_id}/revoke", headers={"X-CSRF-Token": token})
            assert "失効 / Revoked" in table.text
            assert program.get("/v1/models").status_code == 401
    created = [r for r in audit_records(server, "key.create") if r["key_id"] == key_id]
    assert created == [{"principal": "oidc:suzuki", "key_id": key_id, "role": "user", "tags": ["人事", "広報"], "limits": {}}]


def test_a_key_made_on_the_page_carries_its_own_quota(server):
    browser, _ = sign_in(server, "suzuki")
    with closing(browser):
        token = csrf_of(browser.get("/keys").text)
        made = browser.post("/ui/keys", data={"name": "夜間バッチ", "role": "user", "requests_per_minute": "2",
                                              "tokens_per_day": "", "tokens_per_month": "90000"},
                            headers={"X-CSRF-Token": token})
        secret = re.search(r'value="(sk-skh-[^"]+)"', made.text).group(1)
        assert "2/分" in browser.get("/ui/keys/table").text and "90,000/月" in browser.get("/ui/keys/table").text
        bad = browser.post("/ui/keys", data={"role": "user", "tokens_per_day": "-5"}, headers={"X-CSRF-Token": token})
        assert 'class="error"' in bad.text and "tokens_per_day" in bad.text
    chat = {"model": "extractive", "messages": [{"role": "user", "content": "こんにちは"}]}
    if time.time() % 60 > 50:  # the count is per calendar minute: keep the three inside one
        time.sleep(61 - time.time() % 60)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"}) as program:
        codes = [program.post("/v1/chat/completions", json=chat).status_code for _ in range(3)]
    assert codes == [200, 200, 429]  # the third is over the key's own limit


def test_a_user_cannot_open_the_keys_page(server):
    browser, _ = sign_in(server, "sato")
    with closing(browser):
        assert browser.get("/keys").status_code == 403
        assert 'href="/keys"' not in browser.get("/chat").text


def test_an_unreachable_identity_provider_is_one_clear_line(tmp_path, caplog):
    issuer = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = make_settings(tmp_path, extra_toml=oidc_toml(issuer))
    served = run_server(settings)
    live = next(served)
    try:
        with httpx.Client(base_url=live.url, follow_redirects=False) as browser:
            page = browser.get("/auth/oidc/start")
        assert page.status_code == 502
        line = re.search(r'<p class="error" role="alert">([^<]*)</p>', page.text).group(1)
        assert line.startswith(f"identity provider {issuer}: discovery") and "認証サーバーに接続できません" in line
        assert "Traceback" not in page.text
    finally:
        next(served, None)
    assert any("sign-in with the organisation's accounts is unavailable for now" in r.getMessage()
               for r in caplog.records)


def test_the_key_login_can_be_turned_off(tmp_path, idp):
    served = run_server(make_settings(tmp_path, extra_toml=oidc_toml(idp.issuer, api_key_login=False)))
    live = next(served)
    try:
        with httpx.Client(base_url=live.url, follow_redirects=False) as browser:
            page = browser.get("/login").text
            assert "組織のアカウントでログイン" in page and 'name="key"' not in page
            refused = browser.post("/login", data={"key": live.keys["admin"]})
            assert refused.status_code == 403 and "sekisho_session" not in refused.headers.get("set-cookie", "")
        with live.client("admin") as program:
            assert program.get("/api/me").status_code == 200  # programs keep their keys
    finally:
        next(served, None)

"""A real OpenID Connect provider on loopback for the sign-in tests: oidc-provider-mock (Authlib's
authorization server under Flask) with the organisation's people as predefined users, behind a
small front that makes it check PKCE as a real IdP does (the mock itself ignores code_challenge).

    with identity_provider() as idp:
        settings = make_settings(folder, extra_toml=oidc_toml(idp.issuer))
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import oidc_provider_mock
import werkzeug.serving

CLIENT_ID = "sekisho-test"
CLIENT_SECRET = "test-client-secret"

# The organisation: groups as its directory would send them in the ID token's "groups" claim.
PEOPLE = {
    "sato": {"name": "佐藤 花子", "groups": ["jimu-staff", "jinji"]},  # staff of 人事 (personnel)
    "suzuki": {"name": "鈴木 一郎", "groups": ["soumu-admins"]},  # an administrator
    "kondo": {"name": "近藤 健", "groups": ["contractors"]},  # in no group sekisho knows
}


def oidc_toml(issuer: str, *, api_key_login: bool = True) -> str:
    """The [auth] section an IT department would write for this provider."""
    return f"""
[auth]
api_key_login = {str(api_key_login).lower()}

[auth.oidc]
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
timeout_s = 5

[[auth.oidc.roles]]
group = "soumu-admins"
role = "admin"

[[auth.oidc.roles]]
group = "jimu-staff"
role = "user"

[[auth.oidc.tags]]
group = "jinji"
tag = "人事"

[[auth.oidc.tags]]
group = "zaimu"
tag = "財務"
"""


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


@dataclass
class IdentityProvider:
    issuer: str
    authorizations: list[dict[str, str]] = field(default_factory=list)  # each authorization request's query
    pkce_refusals: int = 0


class _EnforcePkce:
    """WSGI front of the mock: remembers the code_challenge of each authorization request, reads
    the code the reply carries, and refuses a token request whose code_verifier does not hash
    (S256) to it, with the invalid_grant a real IdP would send."""

    def __init__(self, app: Any, provider: IdentityProvider) -> None:
        self.app = app
        self.provider = provider
        self.challenges: dict[str, tuple[str | None, str | None]] = {}
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/oauth2/authorize":
            query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
            if method == "GET":
                self.provider.authorizations.append(query)
            elif method == "POST":
                def remember_code(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                    location = dict(headers).get("Location", "")
                    code = parse_qs(urlsplit(location).query).get("code", [None])[0]
                    if code:
                        with self.lock:
                            self.challenges[code] = (query.get("code_challenge"), query.get("code_challenge_method"))
                    return start_response(status, headers, exc_info)

                return self.app(environ, remember_code)
        if path == "/oauth2/token" and method == "POST":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            form = {k: v[0] for k, v in parse_qs(body.decode("ascii")).items()}
            if form.get("grant_type") == "authorization_code":
                with self.lock:
                    challenge, challenge_method = self.challenges.pop(form.get("code", ""), (None, None))
                verifier = form.get("code_verifier")
                if challenge_method != "S256" or not verifier or _s256(verifier) != challenge:
                    self.provider.pkce_refusals += 1
                    payload = json.dumps({"error": "invalid_grant", "error_description": "PKCE verification failed"})
                    start_response("400 Bad Request", [("Content-Type", "application/json")])
                    return [payload.encode("utf-8")]
        return self.app(environ, start_response)


@contextmanager
def identity_provider() -> Iterator[IdentityProvider]:
    """The provider on a free loopback port for the duration of the block. Its issuer is
    http://localhost:<port>, another site than the sekisho under test (http://127.0.0.1:<port>),
    so the browser crosses sites as it does between an IdP and sekisho."""
    users = [oidc_provider_mock.User(sub=sub, claims={"preferred_username": sub, **claims})
             for sub, claims in PEOPLE.items()]
    app = oidc_provider_mock.app(require_nonce=True, user_claims=users)
    server = werkzeug.serving.make_server("localhost", 0, None, threaded=True)  # app set below, with its issuer
    provider = IdentityProvider(issuer=f"http://localhost:{server.server_port}")
    server.app = _EnforcePkce(app, provider)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                              name="oidc-provider")
    thread.start()
    try:
        httpx.get(provider.issuer + "/.well-known/openid-configuration", timeout=10).raise_for_status()
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def pick_user(client: httpx.Client, authorization_url: str, sub: str) -> httpx.Response:
    """At the provider's authorization page, sign in as `sub` (the page's form posts back to its
    own URL); the reply is the redirect to sekisho's callback."""
    page = client.get(authorization_url)
    assert page.status_code == 200, page.text
    return client.post(authorization_url, data={"sub": sub})

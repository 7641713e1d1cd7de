"""Sign-in with the organisation's identity provider: OpenID Connect's authorization code flow with
PKCE (S256), by Authlib.

    begin()   a sign-in row (state, nonce, PKCE verifier, redirect URI) in the access database,
              found again by the hash of a random token the browser gets as a cookie; the URL of
              the IdP's authorization endpoint
    finish()  the row taken once with that cookie; the state compared; the code exchanged with the
              verifier; the ID token's signature checked against the IdP's JWKS and its iss, aud,
              exp, iat and nonce checked (Authlib); the claims mapped to a role and access tags

Why not Authlib's Starlette `authorize_redirect`: it keeps the flow in Starlette's SessionMiddleware,
a cookie signed with one secret every worker process would have to share. Here the flow lives in
the access database with the sessions, so any worker can finish a sign-in another began, and the
cookie binds it to the browser that started it (a reply forwarded to another browser finds no row).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2  # the HTTP client Authlib's OAuth client is built on: its errors are httpx2's
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import is_secure_transport
from authlib.common.urls import add_params_to_uri
from authlib.integrations.starlette_client import OAuth
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc.errors import JoseError

from sekisho.config import ConfigError, OidcConfig, OidcRule
from sekisho.db import Database
from sekisho.errors import Forbidden, SekishoError
from sekisho.identity import Principal, Role, effective_tags

log = logging.getLogger("sekisho.server")

SIGNIN_COOKIE = "sekisho_signin"
SIGNIN_TTL_S = 600  # time to sign in at the IdP (a password, a second factor) before starting over
CALLBACK_PATH = "/auth/oidc/callback"


class SignInFailed(SekishoError):
    """The sign-in could not be completed; the message says which step refused and why."""

    http_status = 400
    code = "sign_in_failed"


class IdentityProviderUnreachable(SignInFailed):
    http_status = 502
    code = "idp_unreachable"


class NotMapped(Forbidden):
    """The IdP vouched for the person, but no rule of [auth.oidc] gives them a role."""

    code = "no_mapped_group"


# --- claims -> who -------------------------------------------------------------------------

def _values(claims: Mapping[str, Any], claim: str) -> set[str]:
    value = claims.get(claim)
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {v for v in value if isinstance(v, str)}
    return set()


def _matches(rule: OidcRule, claims: Mapping[str, Any], config: OidcConfig) -> bool:
    return rule.group in _values(claims, rule.claim or config.groups_claim)


def principal_name(claims: Mapping[str, Any], config: OidcConfig) -> str:
    value = claims.get(config.name_claim)
    if not isinstance(value, str) or not value.strip():
        raise SignInFailed(f"the ID token has no '{config.name_claim}' claim to name the user by "
                           "([auth.oidc] name_claim)")
    return f"oidc:{value.strip()}"


def map_claims(claims: Mapping[str, Any], config: OidcConfig) -> Principal:
    """Who the verified claims make the user: the first role rule whose group they are in (else
    default_role, else NotMapped) and the tag of every tag rule whose group they are in."""
    name = principal_name(claims, config)
    role_name = next((r.role for r in config.roles if _matches(r, claims, config)), config.default_role)
    if role_name is None:
        raise NotMapped(f"{name} is in no group that [auth.oidc] maps to a role "
                        "(組織のアカウントに sekisho を使う権限がありません)")
    role = Role(role_name)
    tags = tuple(sorted({r.tag for r in config.tags if _matches(r, claims, config)}))
    return Principal(name=name, role=role, tags=effective_tags(role, tags))


def display_name(claims: Mapping[str, Any], config: OidcConfig, principal: Principal) -> str:
    value = claims.get(config.display_claim)
    return value.strip()[:100] if isinstance(value, str) and value.strip() else principal.name


# --- the flow ------------------------------------------------------------------------------

@dataclass(frozen=True)
class PendingSignIn:
    state: str
    nonce: str
    verifier: str  # PKCE code_verifier; the IdP saw only its S256 hash
    redirect_uri: str


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class OidcSignIn:
    """The relying party of one IdP: discovery, the authorization URL, the code exchange and the
    ID token's checks (Authlib), the sign-ins under way (access database), RP-initiated logout."""

    def __init__(self, config: OidcConfig, db: Database) -> None:
        if not is_secure_transport(config.issuer):
            raise ConfigError(f"auth.oidc.issuer {config.issuer!r}: must be https:// (http only on loopback)")
        self.config = config
        self.db = db
        self.discovery_url = config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        client_kwargs: dict[str, Any] = {"scope": " ".join(config.scopes), "code_challenge_method": "S256",
                                         "timeout": config.timeout_s}
        if not config.client_secret:
            client_kwargs["token_endpoint_auth_method"] = "none"  # a public client proves itself by PKCE alone
        self.client = OAuth().register("idp", client_id=config.client_id, client_secret=config.client_secret or None,
                                       server_metadata_url=self.discovery_url, client_kwargs=client_kwargs)
        self._checked = False

    def _unreachable(self, step: str, exc: Exception) -> IdentityProviderUnreachable:
        return IdentityProviderUnreachable(f"identity provider {self.config.issuer}: {step} failed: "
                                           f"{str(exc) or type(exc).__name__} (認証サーバーに接続できません)")

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document, fetched once per process and checked: issued by the
        configured issuer, every endpoint https (or loopback)."""
        try:
            metadata = await self.client.load_server_metadata()
        except (httpx2.HTTPError, ValueError) as exc:
            raise self._unreachable(f"discovery ({self.discovery_url})", exc) from None
        if not self._checked:
            if metadata.get("issuer") != self.config.issuer:
                raise SignInFailed(f"identity provider {self.discovery_url}: names its issuer "
                                   f"{metadata.get('issuer')!r}, not the configured {self.config.issuer!r}")
            try:
                OpenIDProviderMetadata(metadata).validate()
            except ValueError as exc:
                raise SignInFailed(f"identity provider {self.discovery_url}: unusable discovery document: {exc}") from None
            self._checked = True
        return metadata

    async def begin(self, redirect_uri: str) -> tuple[str, PendingSignIn]:
        """The authorization URL to send the browser to, and what the callback must find again."""
        await self.metadata()
        created = await self.client.create_authorization_url(redirect_uri)
        return created["url"], PendingSignIn(state=created["state"], nonce=created["nonce"],
                                             verifier=created["code_verifier"], redirect_uri=redirect_uri)

    def remember(self, pending: PendingSignIn) -> str:
        """Store a sign-in under way; returns the token for the browser's cookie."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self.db.write() as conn:
            conn.execute("DELETE FROM oidc_signins WHERE expires < ?", (now,))
            conn.execute("INSERT INTO oidc_signins (id, state, nonce, verifier, redirect_uri, expires) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (_digest(token), pending.state, pending.nonce, pending.verifier,
                                                       pending.redirect_uri, now + SIGNIN_TTL_S))
        return token

    def take(self, token: str) -> PendingSignIn | None:
        """The sign-in this browser started, removed (a reply is used once); None when there is
        none or it expired."""
        with self.db.write() as conn:
            row = conn.execute("SELECT state, nonce, verifier, redirect_uri, expires FROM oidc_signins WHERE id = ?",
                               (_digest(token),)).fetchone()
            conn.execute("DELETE FROM oidc_signins WHERE id = ?", (_digest(token),))
        if row is None or row[4] < time.time():
            return None
        return PendingSignIn(state=row[0], nonce=row[1], verifier=row[2], redirect_uri=row[3])

    async def finish(self, pending: PendingSignIn, reply: Mapping[str, str]) -> dict[str, Any]:
        """The verified claims of the ID token the IdP's reply (the callback's query) leads to."""
        if reply.get("error"):
            description = reply.get("error_description") or ""
            raise SignInFailed(f"the identity provider refused the sign-in: {reply['error']}"
                               f"{': ' + description if description else ''}")
        if not hmac.compare_digest(reply.get("state") or "", pending.state):
            raise SignInFailed("state mismatch: this reply does not belong to the sign-in this browser started; "
                               "start again (状態が一致しません)")
        code = reply.get("code")
        if not code:
            raise SignInFailed("the identity provider's reply carries no authorization code")
        await self.metadata()
        try:
            token = await self.client.fetch_access_token(redirect_uri=pending.redirect_uri, code=code,
                                                         code_verifier=pending.verifier)
        except httpx2.HTTPError as exc:
            raise self._unreachable("the code exchange", exc) from None
        except (AuthlibBaseError, ValueError) as exc:
            raise SignInFailed(f"the identity provider refused the code: {exc}") from None
        return await self.verify_id_token(token, pending.nonce)

    async def verify_id_token(self, token: Mapping[str, Any], nonce: str) -> dict[str, Any]:
        """The claims of the token response's ID token once its signature (the IdP's JWKS, fetched
        again for a key id it does not know), iss, aud, exp, iat, nonce, azp and at_hash hold."""
        if "id_token" not in token:
            raise SignInFailed("the identity provider returned no ID token (is \"openid\" among [auth.oidc] scopes?)")
        metadata = await self.metadata()
        # Authlib checks iss only when told to and aud not at all: both are required here.
        options = {"iss": {"essential": True, "value": metadata["issuer"]},
                   "aud": {"essential": True, "value": self.config.client_id}}
        try:
            claims = await self.client.parse_id_token(dict(token), nonce=nonce, claims_options=options)
        except httpx2.HTTPError as exc:
            raise self._unreachable("fetching its signing keys", exc) from None
        except (JoseError, AuthlibBaseError, ValueError) as exc:
            raise SignInFailed(f"the ID token was rejected: {exc}") from None
        return dict(claims)

    async def logout_url(self, post_logout_redirect_uri: str) -> str | None:
        """Where to send the browser to end the session at the IdP too (RP-initiated logout), or
        None when it is turned off, the IdP offers no end_session_endpoint, or cannot be reached."""
        if not self.config.end_session:
            return None
        try:
            metadata = await self.metadata()
        except SignInFailed as exc:
            log.warning("sign-out at the identity provider skipped: %s", exc)
            return None
        endpoint = metadata.get("end_session_endpoint")
        if not endpoint:
            return None
        if origin(endpoint) != origin(self.config.issuer):
            # The pages' Content-Security-Policy lets the sign-out form lead to the issuer's origin only.
            log.warning("sign-out at the identity provider skipped: its end_session_endpoint %s is not on the "
                        "issuer's origin", endpoint)
            return None
        # client_id rather than id_token_hint: sekisho keeps no ID token. No state either (Authlib's
        # create_logout_url adds one): the way back is the login page, which has nothing to check.
        return add_params_to_uri(endpoint, {"client_id": self.config.client_id,
                                            "post_logout_redirect_uri": post_logout_redirect_uri})

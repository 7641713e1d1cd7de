"""Signing in and out of the web UI: with the organisation's identity provider (OpenID Connect,
server/oidc.py) and, unless an admin turned it off, with an API key. Either way the browser gets a
session cookie (HttpOnly, SameSite=Lax, Secure when sekisho is reached over https) and every
sign-in, refused sign-in and sign-out goes to the audit log, never with a token in it.

Lax, not Strict: the IdP sends the browser back from another site, and a Strict cookie set or
needed on that navigation would not be sent, so the user would land signed out. Cross-site POSTs
still go without the cookie, and every state-changing request made with it carries the session's
CSRF token (deps.authenticate; the sign-out form here)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sekisho.errors import SekishoError
from sekisho.server.deps import AppState, audit_event, state_of
from sekisho.server.oidc import (
    CALLBACK_PATH,
    SIGNIN_COOKIE,
    SIGNIN_TTL_S,
    NotMapped,
    SignInFailed,
    display_name,
    map_claims,
    principal_name,
)
from sekisho.server.security import CSRF_FIELD, SESSION_COOKIE, csrf_matches
from sekisho.server.ui import PageRoute, render

router = APIRouter(include_in_schema=False, route_class=PageRoute)

SIGNIN_PATH = "/auth/oidc/"
LOGIN_TITLE = "ログイン"
FAILED = "ログインできませんでした / Sign-in failed"


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def public_base(request: Request) -> str:
    """Where browsers reach sekisho: [auth] public_url, else the address this request came to."""
    return state_of(request).settings.auth.public_url.rstrip("/") or str(request.base_url).rstrip("/")


def _secure(request: Request) -> bool:
    return public_base(request).startswith("https://") or request.url.scheme == "https"


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int, path: str = "/") -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=_secure(request),
                        path=path)


def _clear_cookie(response: Response, request: Request, name: str, path: str = "/") -> None:
    response.delete_cookie(name, path=path, httponly=True, samesite="lax", secure=_secure(request))


def _login_page(request: Request, status_code: int = 200, **context: Any) -> HTMLResponse:
    auth = state_of(request).settings.auth
    return render(request, "login.html", status_code=status_code, title=LOGIN_TITLE, oidc=auth.oidc is not None,
                  api_key_login=auth.api_key_login, **context)


async def _open_session(request: Request, state: AppState, record: dict[str, Any], **opened: Any) -> Response:
    sid = await state.runtime.run(lambda: state.sessions.open(**opened))
    await audit_event(state, "session.login", {**record, "client": _client(request)})
    response = RedirectResponse("/", status_code=303)
    _set_cookie(response, request, SESSION_COOKIE, sid, round(state.sessions.ttl_s))
    return response


@router.get("/login")
async def login_page(request: Request, ended: str | None = None) -> HTMLResponse:
    notice = ("セッションが終了しました。もう一度ログインしてください。/ Your session has ended; please sign in again."
              if ended else None)
    return _login_page(request, notice=notice)


@router.post("/login")
async def login(request: Request, key: str = Form(..., max_length=200)) -> Response:
    state = state_of(request)
    if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
        # Another site's page posting its own key here would sign this browser in as that key
        # (login CSRF); browsers say where a form came from.
        return _login_page(request, status_code=403, error="他のサイトからのログインは受け付けません。/ Sign-in from another site refused.")
    if not state.settings.auth.api_key_login:
        return _login_page(request, status_code=403, error="APIキーでのログインは無効です。組織のアカウントでログインしてください。"
                                                           "/ Logging in with an API key is turned off.")
    client = _client(request)
    wait = await state.runtime.run(state.anonymous_limiter.take, f"address:{client}")
    if wait > 0:
        return _login_page(request, status_code=429,
                           error=f"試行が多すぎます。{max(1, round(wait))} 秒後にもう一度お試しください。/ Too many attempts.")
    found = await state.runtime.run(state.keys.authenticate, key.strip())
    if found is None:
        state.failed.note(client, "POST", "/login", "login with an invalid key")
        return _login_page(request, status_code=401, error="APIキーが正しくないか、失効しています。/ The key is wrong or revoked.")
    return await _open_session(request, state, {"principal": f"key:{found.id}:{found.name}", "via": "key"},
                               key_id=found.id)


# --- the organisation's identity provider --------------------------------------------------

async def _refused(request: Request, state: AppState, exc: SekishoError, principal: str | None = None) -> Response:
    """The page saying why the sign-in failed, the refusal audited."""
    await audit_event(state, "session.refused", {"via": "oidc", "principal": principal, "reason": str(exc),
                                                 "client": _client(request)})
    heading = "利用権限がありません / No access" if isinstance(exc, NotMapped) else FAILED
    response = render(request, "error.html", status_code=exc.http_status, title=LOGIN_TITLE, heading=heading,
                      message=str(exc), back="/login")
    _clear_cookie(response, request, SIGNIN_COOKIE, SIGNIN_PATH)
    return response


async def _slowed(request: Request, state: AppState) -> Response | None:
    """Sign-in steps write to the database and the audit log: per address, as fast as key guesses."""
    wait = await state.runtime.run(state.anonymous_limiter.take, f"address:{_client(request)}")
    if wait <= 0:
        return None
    response = render(request, "error.html", status_code=429, title=LOGIN_TITLE, heading=FAILED, back="/login",
                      message=f"試行が多すぎます。{max(1, round(wait))} 秒後にもう一度お試しください。/ Too many attempts.")
    response.headers["Retry-After"] = str(max(1, round(wait)))
    return response


def _not_configured(request: Request) -> Response:
    return render(request, "error.html", status_code=404, title=LOGIN_TITLE, heading=FAILED, back="/login",
                  message="組織のアカウントでのログインは設定されていません。/ No identity provider is configured ([auth.oidc]).")


@router.get("/auth/oidc/start")
async def oidc_start(request: Request) -> Response:
    state = state_of(request)
    if state.oidc is None:
        return _not_configured(request)
    if (slowed := await _slowed(request, state)) is not None:
        return slowed
    try:
        url, pending = await state.oidc.begin(public_base(request) + CALLBACK_PATH)
    except SignInFailed as exc:
        return await _refused(request, state, exc)
    token = await state.runtime.run(state.oidc.remember, pending)
    response = RedirectResponse(url, status_code=303)
    # Only the callback needs it: the cookie goes nowhere else.
    _set_cookie(response, request, SIGNIN_COOKIE, token, SIGNIN_TTL_S, path=SIGNIN_PATH)
    return response


@router.get(CALLBACK_PATH)
async def oidc_callback(request: Request) -> Response:
    state = state_of(request)
    if state.oidc is None:
        return _not_configured(request)
    if (slowed := await _slowed(request, state)) is not None:
        return slowed
    token = request.cookies.get(SIGNIN_COOKIE)
    pending = await state.runtime.run(state.oidc.take, token) if token else None
    if pending is None:
        return await _refused(request, state, SignInFailed(
            "no sign-in under way in this browser (it expired, or began in another browser): start again "
            "(ログインの手続きが見つかりません)"))
    config, who = state.oidc.config, None
    try:
        claims = await state.oidc.finish(pending, request.query_params)
        who = principal_name(claims, config)
        principal = map_claims(claims, config)
    except SekishoError as exc:
        return await _refused(request, state, exc, who)
    response = await _open_session(request, state, {"principal": principal.name, "via": "oidc", "issuer": config.issuer,
                                                    "role": principal.role.value, "tags": list(principal.tags)},
                                   principal=principal, display=display_name(claims, config, principal))
    _clear_cookie(response, request, SIGNIN_COOKIE, SIGNIN_PATH)
    return response


# --- sign-out ------------------------------------------------------------------------------

@router.post("/logout")
async def logout(request: Request, csrf_token: str = Form("", alias=CSRF_FIELD, max_length=200)) -> Response:
    """Ends the session server-side, then at the IdP too when it was an IdP sign-in and the IdP
    offers RP-initiated logout."""
    state = state_of(request)
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid:
        return RedirectResponse("/login", status_code=303)
    if not csrf_matches(sid, csrf_token):
        return render(request, "error.html", status_code=403, title="ログアウト", heading="ログアウトできません / Not signed out",
                      message="CSRF token missing or wrong: reload the page and sign out again (ページを読み込み直してください)")
    ended = await state.runtime.run(state.sessions.close, sid)
    target = "/login"
    if ended is not None:
        key = await state.runtime.run(state.keys.get, ended.key_id) if ended.key_id else None
        who = ended.principal.name if ended.principal else key.principal().name if key else f"key:{ended.key_id}"
        await audit_event(state, "session.logout", {"principal": who, "via": "oidc" if ended.principal else "key",
                                                    "client": _client(request)})
        if ended.principal is not None and state.oidc is not None:
            target = await state.oidc.logout_url(public_base(request) + "/login") or target
    response = RedirectResponse(target, status_code=303)
    _clear_cookie(response, request, SESSION_COOKIE)
    return response

"""Signing in with the organisation's accounts, in Chromium, against a real OpenID Connect provider
on loopback (oidc-provider-mock, tests/server_fixtures/oidc.py) on another site than sekisho: a
member of 人事 signs in, sees the 人事 document and the untagged one but not 財務's, and signs out
at sekisho and at the IdP; a contractor in no mapped group is refused; a forged state or nonce is
refused; a request with the session cookie but without the CSRF token is refused; an admin signed
in through the IdP creates a key on the 鍵 page that then works against /v1, and revokes it."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from e2e.test_server_browser import SHOTS, browser  # noqa: F401  (the shared Chromium fixture)
from server_fixtures.oidc import PEOPLE, identity_provider, oidc_toml
from server_fixtures.support import make_settings, run_server, wait_for_job

DOCUMENTS = {  # file -> access tags
    "jinji-hyoka.md": ("# 人事評価の手順\n\n人事評価は毎年十月に行い、面談記録は人事課が五年間保管します。\n", "人事"),
    "zaimu-yosan.md": ("# 予算執行の手順\n\n予算の流用は財務課長の決裁を経て行います。\n", "財務"),
    "madoguchi.md": ("# 窓口の受付時間\n\n窓口は平日の午前八時半から午後五時十五分まで開いています。\n", ""),
}


@pytest.fixture(scope="module")
def idp():
    with identity_provider() as provider:
        yield provider


@pytest.fixture(scope="module")
def server(idp, tmp_path_factory):
    served = run_server(make_settings(tmp_path_factory.mktemp("oidc-e2e"), extra_toml=oidc_toml(idp.issuer)))
    live = next(served)
    with live.client("admin") as admin:
        for name, (text, tag) in DOCUMENTS.items():
            job = admin.post("/api/documents", files=[("files", (name, text.encode()))], data={"tags": tag}).json()
            assert wait_for_job(admin, job["id"])["status"] == "done"
    yield live
    next(served, None)


def open_page(browser: Browser) -> tuple[Page, list[str]]:
    page = browser.new_context(locale="ja-JP", viewport={"width": 1100, "height": 900}).new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    return page, problems


def sign_in(page: Page, server, idp, sub: str) -> None:
    """From sekisho's login page to the IdP's page, where the person picks their account."""
    page.goto(f"{server.url}/login")
    page.get_by_role("link", name=re.compile("組織のアカウントでログイン")).click()
    expect(page).to_have_url(re.compile("^" + re.escape(idp.issuer) + "/oauth2/authorize"))
    page.get_by_role("button", name=sub, exact=True).click()


def test_a_member_of_a_tagged_group_sees_their_documents_and_signs_out(browser, server, idp):
    page, problems = open_page(browser)
    sign_in(page, server, idp, "sato")
    expect(page).to_have_url(f"{server.url}/chat")
    expect(page.locator("header .who")).to_contain_text(PEOPLE["sato"]["name"])
    session = next(c for c in page.context.cookies() if c["name"] == "sekisho_session")
    assert session["httpOnly"] and session["sameSite"] == "Lax"

    page.get_by_role("link", name=re.compile("文書")).click()
    table = page.locator("#doc-table")
    expect(table).to_contain_text("人事評価の手順")
    expect(table).to_contain_text("窓口の受付時間")
    expect(table).not_to_contain_text("予算執行の手順")
    expect(table.locator("caption")).to_contain_text("2 件")
    assert page.get_by_role("link", name=re.compile("鍵")).count() == 0  # a user manages no keys
    page.screenshot(path=str(SHOTS / "oidc-documents.png"), full_page=True)

    page.get_by_role("button", name=re.compile("ログアウト")).click()
    expect(page).to_have_url(re.compile("^" + re.escape(idp.issuer) + "/oauth2/end_session"))
    page.get_by_role("button", name="End session").click()
    expect(page).to_have_url(f"{server.url}/login")
    page.goto(f"{server.url}/documents")
    expect(page).to_have_url(re.compile("/login$"))
    assert not problems


def test_a_person_in_no_mapped_group_is_refused(browser, server, idp):
    page, _ = open_page(browser)
    responses = []
    page.on("response", lambda r: responses.append(r) if "/auth/oidc/callback" in r.url else None)
    sign_in(page, server, idp, "kondo")
    expect(page.get_by_role("heading")).to_contain_text("利用権限がありません")
    expect(page.get_by_role("alert")).to_contain_text("oidc:kondo is in no group")
    assert responses[-1].status == 403
    assert not [c for c in page.context.cookies() if c["name"] == "sekisho_session"]
    page.screenshot(path=str(SHOTS / "oidc-refused.png"), full_page=True)


@pytest.mark.parametrize("param, refusal", [("state", "state mismatch"), ("nonce", "Invalid claim: 'nonce'")])
def test_a_forged_state_or_nonce_is_refused(browser, server, idp, param, refusal):
    page, _ = open_page(browser)

    def forge(route: Route) -> None:  # the browser's requests to the IdP's authorization page, altered
        parts = urlsplit(route.request.url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()} | {param: "forged-by-someone-else"}
        route.continue_(url=urlunsplit(parts._replace(query=urlencode(query))))

    page.route(re.compile("^" + re.escape(idp.issuer) + "/oauth2/authorize"), forge)
    sign_in(page, server, idp, "sato")
    expect(page.get_by_role("heading")).to_contain_text("ログインできませんでした")
    expect(page.get_by_role("alert")).to_contain_text(refusal)
    page.goto(f"{server.url}/chat")
    expect(page).to_have_url(re.compile("/login$"))


def test_a_request_with_the_cookie_but_without_the_csrf_token_is_refused(browser, server, idp):
    page, _ = open_page(browser)
    sign_in(page, server, idp, "sato")
    expect(page).to_have_url(f"{server.url}/chat")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    # page.request shares the browser context's cookies: the session cookie goes with it.
    refused = page.request.post(f"{server.url}/api/conversations", data={})
    assert refused.status == 403 and "CSRF" in refused.json()["error"]["message"]
    assert page.request.post(f"{server.url}/api/conversations", data={},
                             headers={"X-CSRF-Token": token}).status == 201
    # The page's own requests carry it: asking through the chat form works.
    page.get_by_label("質問 Question").fill("窓口は何時まで開いていますか？")
    page.get_by_label("質問 Question").press("Control+Enter")
    expect(page.locator("article.answer").last).to_contain_text("午後五時十五分", timeout=60_000)


def test_an_admin_creates_a_key_in_the_ui_that_works_against_v1(browser, server, idp):
    page, problems = open_page(browser)
    sign_in(page, server, idp, "suzuki")
    page.get_by_role("link", name=re.compile("鍵")).click()
    expect(page).to_have_url(f"{server.url}/keys")
    page.get_by_label("名前").fill("窓口チャットボット")
    page.get_by_label("役割").select_option("user")
    page.get_by_label("アクセスタグ").fill("人事")
    page.get_by_role("button", name=re.compile("発行")).click()
    secret = page.locator("#new-secret")
    expect(secret).to_have_value(re.compile(r"^sk-skh-"))
    key = secret.input_value()
    key_id = key[len("sk-skh-"):].split("_")[0]
    row = page.locator(f"#key-{key_id}")
    expect(row).to_contain_text("窓口チャットボット")  # the table refreshed itself
    page.screenshot(path=str(SHOTS / "oidc-keys.png"), full_page=True)

    chat = {"model": "sekisho-rag/extractive", "messages": [{"role": "user", "content": "人事評価の面談記録は何年保管しますか？"}]}
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as program:
        assert "extractive" in [m["id"] for m in program.get("/v1/models").json()["data"]]
        answer = program.post("/v1/chat/completions", json=chat)
        assert answer.status_code == 200 and "五年間" in answer.json()["choices"][0]["message"]["content"]

        page.once("dialog", lambda dialog: dialog.accept())
        row.get_by_role("button", name=re.compile("失効")).click()
        expect(page.locator(f"#key-{key_id}")).to_contain_text("失効 / Revoked")
        assert program.get("/v1/models").status_code == 401
    assert not problems

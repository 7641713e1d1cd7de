"""The web UI in a real browser (Debian's chromium driven by Playwright, headless): log in with a
key, upload a document and watch it ingest, ask, open a citation, and have a reviewer approve a
held answer that the requester then reads. Screenshots land in artifacts/e2e/ (git-ignored).

CI: `apt-get install -y chromium` and `pip install playwright==1.65.2` (no browser download)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from server_fixtures.support import CITY, REPO, make_settings, run_server

CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "artifacts" / "e2e"
# Every answer of the user role waits for a reviewer; the admin's answers are released at once.
POLICY = '[review]\nroles = ["user"]\nunsupported_claims = false\n'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from run_server(make_settings(tmp_path_factory.mktemp("e2e"), policy=POLICY))


@pytest.fixture(scope="module")
def browser() -> Browser:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium", pytrace=False)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def login(browser: Browser, server, role: str) -> Page:
    page = browser.new_context(locale="ja-JP", viewport={"width": 1100, "height": 900}).new_page()
    page.goto(f"{server.url}/login")
    page.get_by_label("APIキー").fill(server.keys[role])
    page.get_by_role("button", name=re.compile("ログイン")).click()
    expect(page.get_by_role("navigation")).to_be_visible()
    return page


def ask(page: Page, question: str) -> None:
    page.get_by_role("link", name=re.compile("質問")).click()
    page.get_by_label("質問").fill(question)
    page.get_by_role("button", name=re.compile("送信")).click()
    expect(page.locator("article.answer").first).to_be_visible(timeout=60_000)


def test_wrong_key_stays_on_login(browser, server):
    page = browser.new_context().new_page()
    page.goto(f"{server.url}/chat")
    expect(page).to_have_url(re.compile("/login$"))
    page.get_by_label("APIキー").fill("sk-skh-00000000_wrong")
    page.get_by_role("button", name=re.compile("ログイン")).click()
    expect(page.get_by_role("alert")).to_contain_text("APIキーが正しくない")
    cookies = page.context.cookies()
    assert not cookies


def test_upload_ask_open_citation_and_approve_held_answer(browser, server):
    admin = login(browser, server, "admin")
    session = next(c for c in admin.context.cookies() if c["name"] == "sekisho_session")
    assert session["httpOnly"] and session["sameSite"] == "Lax"

    admin.get_by_role("link", name=re.compile("文書")).click()
    admin.get_by_label("ファイル").set_input_files(str(CITY / "juminhyo.md"))
    admin.get_by_role("button", name=re.compile("アップロード")).click()
    expect(admin.locator(".job .status").first).to_have_text(re.compile("完了"), timeout=120_000)
    expect(admin.locator("#doc-table")).to_contain_text("住民票の写しの交付")
    expect(admin.locator("#doc-table caption")).to_contain_text("1 件")
    admin.screenshot(path=str(SHOTS / "documents.png"), full_page=True)

    ask(admin, "住民票の写しを請求できるのは誰ですか？")
    answer = admin.locator("article.answer").first
    expect(answer.locator(".text")).to_contain_text("本人")
    citation = answer.locator("a.cite").first
    expect(citation).to_be_visible()
    citation.click()
    passage = admin.locator("#passage .passage")
    expect(passage).to_contain_text("本人")
    expect(passage.locator("h3")).to_contain_text("住民票の写しの交付")
    admin.screenshot(path=str(SHOTS / "chat-citation.png"), full_page=True)

    user = login(browser, server, "user")
    ask(user, "住民票の写しの交付手数料はいくらですか？")
    expect(user.locator("article.answer .status.held")).to_be_visible()
    user.screenshot(path=str(SHOTS / "chat-held.png"), full_page=True)

    reviewer = login(browser, server, "reviewer")
    reviewer.get_by_role("link", name=re.compile("レビュー")).click()
    item = reviewer.locator("article.review").first
    expect(item).to_contain_text("role:user")
    reviewer.screenshot(path=str(SHOTS / "review-queue.png"), full_page=True)
    item.get_by_role("button", name=re.compile("承認")).first.click()
    expect(reviewer.locator("article.review .status").first).to_have_text(re.compile("承認"))

    user.get_by_role("button", name=re.compile("承認済みの回答を表示")).click()
    expect(user.locator(".released")).to_contain_text("承認済み")
    user.screenshot(path=str(SHOTS / "chat-released.png"), full_page=True)


def test_auditor_sees_audit_and_verifies_but_cannot_chat(browser, server):
    auditor = login(browser, server, "auditor")
    expect(auditor).to_have_url(re.compile("/audit$"))
    assert auditor.get_by_role("link", name=re.compile("質問")).count() == 0
    auditor.get_by_role("button", name=re.compile("改ざん検証")).click()
    expect(auditor.locator("#verify")).to_contain_text("正常")
    auditor.screenshot(path=str(SHOTS / "audit.png"), full_page=True)
    # Landing on / sent the auditor to the audit log without recording a denial.
    assert "access.denied" not in auditor.locator("tbody tr").first.inner_text()
    response = auditor.goto(f"{server.url}/chat")
    assert response.status == 403
    expect(auditor.get_by_role("alert")).to_contain_text("auditor")

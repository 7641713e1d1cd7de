"""The conversation page in Chromium: a two-turn conversation whose answers stream in, the
follow-up answered in context, a citation opened, feedback given, the history kept across a
reload, at a phone's width; and Markdown planted in a document cannot run a script."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from server_fixtures.support import make_settings, run_server, upload_and_wait

CHROMIUM = "/usr/bin/chromium"
PLANTED = ("# 緊急のお知らせ\n\n庁舎の停電予定は次のとおりです。<img src=x onerror=\"window.__pwned=1\">"
           "<script>window.__pwned=2</script>停電は3月1日の午前9時から正午までです。\n"
           "[詳しくはこちら](javascript:window.__pwned=3)\n")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    served = run_server(make_settings(tmp_path_factory.mktemp("chat")))
    live = next(served)
    with live.client("admin") as admin:
        upload_and_wait(admin, extra=[("teiden.md", PLANTED.encode())])
    yield live
    next(served, None)


@pytest.fixture(scope="module")
def browser() -> Browser:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def login(browser: Browser, server, *, width: int = 1100) -> tuple[Page, list[str]]:
    page = browser.new_context(locale="ja-JP", viewport={"width": width, "height": 900}).new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(f"{server.url}/login")
    page.get_by_label("APIキー").fill(server.keys["user"])
    page.get_by_role("button", name=re.compile("ログイン")).click()
    expect(page.get_by_role("navigation")).to_be_visible()
    return page, problems


def send(page: Page, text: str) -> None:
    box = page.get_by_label("質問 Question")
    box.fill(text)
    box.press("Control+Enter")


def test_a_streamed_two_turn_conversation_with_citations_and_feedback(browser, server, tmp_path):
    from e2e.test_server_browser import SHOTS

    page, problems = login(browser, server, width=390)  # a phone's width
    page.goto(f"{server.url}/chat")
    send(page, "住民票の写しの交付手数料はいくらですか？")
    first = page.locator("article.answer").nth(0)
    expect(first.locator(".text")).to_contain_text("300円", timeout=60_000)
    expect(first.locator(".status.ok")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/chat\?c="))
    send(page, "コンビニだと？")
    second = page.locator("article.answer").nth(1)
    expect(second.locator(".text")).to_contain_text("200円", timeout=60_000)
    expect(second.locator(".turn-meta")).to_contain_text("audit #")
    page.screenshot(path=str(SHOTS / "chat-conversation-390px.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at 390 px ({width} px wide)"

    second.locator("a.cite").first.click()
    expect(page.locator("#passage .passage")).to_contain_text("コンビニ")

    second.get_by_role("button", name=re.compile("良くない回答")).click()
    expect(second.locator(".feedback-done")).to_contain_text("ありがとう")
    second.get_by_label(re.compile("理由")).fill("窓口の金額も知りたかった")
    second.get_by_role("button", name=re.compile("送る")).click()
    expect(second.locator(".feedback-done")).to_contain_text("理由を送りました")

    page.reload()  # answers survive a reload: the conversation is kept on the server
    expect(page.locator("article.answer")).to_have_count(2)
    expect(page.locator("#conversation-list [aria-current]")).to_contain_text("住民票の写しの交付手数料")
    page.screenshot(path=str(SHOTS / "chat-history.png"), full_page=True)
    assert problems == []


def test_markdown_planted_in_a_document_cannot_run_a_script(browser, server):
    page, problems = login(browser, server)
    page.goto(f"{server.url}/chat")
    send(page, "停電はいつですか？")
    answer = page.locator("article.answer").last
    expect(answer.locator(".text")).to_contain_text("停電", timeout=60_000)
    expect(answer.locator(".status")).to_be_visible()  # the turn was replaced by the server's rendering
    page.wait_for_timeout(500)
    assert page.evaluate("window.__pwned") is None
    assert answer.locator(".text img, .text script, .text a[href^='javascript']").count() == 0
    assert problems == []

"""The 利用状況 (usage) page in Chromium: an admin finds it in the menu and reads a day of use as
charts (server-drawn SVG, no script) and tables, with the thumbs-down reasons; real names only
after asking for them; the CSV download; at a phone's width without sideways scrolling. An auditor
reads the figures without the reasons; a user has no such page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from e2e.test_server_browser import SHOTS, browser  # noqa: F401  (the shared Chromium fixture)
from server_fixtures.support import make_settings, run_server, upload_and_wait

REASON = "手数料の説明が古かった"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    served = run_server(make_settings(tmp_path_factory.mktemp("usage-ui")))
    live = next(served)
    with live.client("admin") as admin:
        upload_and_wait(admin)
    with live.client("user") as user:
        good = user.post("/api/ask", json={"question": "住民票の写しの交付手数料はいくらですか？"}).json()
        bad = user.post("/api/ask", json={"question": "児童手当はいつ支払われますか？"}).json()
        user.post("/v1/chat/completions", json={"model": "extractive", "messages": [{"role": "user", "content": "こんにちは"}]})
        assert user.post("/api/feedback", json={"audit_seq": good["audit_seq"], "rating": 1}).status_code == 200
        assert user.post("/api/feedback", json={"audit_seq": bad["audit_seq"], "rating": -1,
                                                "reason": REASON}).status_code == 200
    yield live
    next(served, None)


def login(browser: Browser, server, role: str, *, width: int = 1100) -> tuple[Page, list[str]]:  # noqa: F811
    page = browser.new_context(locale="ja-JP", viewport={"width": width, "height": 900},
                               accept_downloads=True).new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(f"{server.url}/login")
    page.get_by_label("APIキー").fill(server.keys[role])
    page.get_by_role("button", name=re.compile("ログイン")).click()
    expect(page.get_by_role("navigation")).to_be_visible()
    return page, problems


@pytest.mark.parametrize("width", [1100, 390])
def test_an_admin_reads_the_days_use_as_charts(browser, server, width):  # noqa: F811
    page, problems = login(browser, server, "admin", width=width)
    page.get_by_role("navigation").get_by_role("link", name=re.compile("利用状況")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("利用状況")
    totals = page.locator("dl.figures")
    expect(totals.locator("div", has_text="依頼").locator("dd")).to_have_text("3")
    expect(totals.locator("div", has_text="高評価").locator("dd")).to_have_text("1 / 1")
    # Eight charts, each an image with a title; the day's requests drawn as one column.
    charts = page.locator("svg.chart[role=img]")
    expect(charts).to_have_count(8)
    per_day = page.get_by_role("img", name=re.compile("日別の依頼数"))
    expect(per_day.locator("rect.series-0 title")).to_have_text(re.compile(r"依頼 / requests: 3$"))
    per_app = page.get_by_role("img", name=re.compile("アプリ別の依頼数"))
    expect(per_app.locator("rect title")).to_have_text([re.compile(r"^質問 / Ask .*: 2$"),
                                                        re.compile(r"^チャット API / Chat API .*: 1$")])
    satisfaction = page.get_by_role("img", name=re.compile("モデル別の満足度"))
    expect(satisfaction.locator("rect.up title")).to_have_text(re.compile(": 1$"))
    expect(satisfaction.locator("rect.down title")).to_have_text(re.compile(": 1$"))
    expect(page.get_by_role("row", name=re.compile(REASON))).to_be_visible()
    # Users appear under pseudonyms.
    users = page.locator("section[aria-labelledby=users-h] tbody th")
    expect(users).to_have_text([re.compile(r"^user-[0-9a-f]{10}$")])
    page.screenshot(path=str(SHOTS / f"usage-{width}px.png"), full_page=True)
    if width <= 390:
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"the page scrolls sideways at {width} px ({scroll} px wide)"
    assert problems == []


def test_real_names_are_shown_only_when_asked_for_and_the_csv_downloads(browser, server):  # noqa: F811
    page, problems = login(browser, server, "admin")
    page.goto(f"{server.url}/usage")
    page.get_by_label(re.compile("実名で表示")).check()
    page.get_by_role("button", name=re.compile("^表示")).click()
    expect(page).to_have_url(re.compile(r"names=true"))
    expect(page.locator("section[aria-labelledby=users-h] tbody th")).to_have_text(["key:" + _key_id(server) + ":test-user"])
    with page.expect_download() as caught:
        page.get_by_role("link", name=re.compile("CSV")).click()
    text = open(caught.value.path(), encoding="utf-8-sig").read()
    assert text.splitlines()[0].startswith("day,app,model,role,tag,user,requests,")
    assert ":test-user" in text  # the names the page was showing
    assert problems == []


def test_an_auditor_reads_the_figures_but_not_the_reasons_and_a_user_has_no_page(browser, server):  # noqa: F811
    auditor, problems = login(browser, server, "auditor")
    auditor.get_by_role("navigation").get_by_role("link", name=re.compile("利用状況")).click()
    expect(auditor.locator("svg.chart")).to_have_count(8)
    expect(auditor.get_by_text(REASON)).to_have_count(0)
    assert problems == []

    user, _ = login(browser, server, "user")
    expect(user.get_by_role("navigation").get_by_role("link", name=re.compile("利用状況"))).to_have_count(0)
    response = user.goto(f"{server.url}/usage")
    assert response.status == 403
    expect(user.get_by_role("alert")).to_contain_text("audit")


def _key_id(server) -> str:
    return next(k.id for k in server.app.state.sekisho.keys.list() if k.name == "test-user")

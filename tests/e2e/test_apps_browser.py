"""Task apps in Chromium: the catalogue, then 要約 on an uploaded PDF with no model installed (the
extractive default quotes the notice's central sentences, cited, with the run's audit number),
at a desktop and at a phone's width; an app that must write says so in one line."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from e2e.test_chat_browser import browser, login  # noqa: F401  (the shared Chromium fixture)
from e2e.test_server_browser import SHOTS
from server_fixtures.support import CITY, make_settings, run_server

PDF = CITY / "jido-teate.pdf"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    served = run_server(make_settings(tmp_path_factory.mktemp("apps-ui")))
    yield next(served)
    next(served, None)


@pytest.mark.parametrize("width", [1100, 390])
def test_summarise_an_uploaded_pdf_in_the_browser(browser, server, width):  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    page, problems = login(browser, server, width=width)
    page.get_by_role("navigation").get_by_role("link", name=re.compile("アプリ")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("アプリ")
    page.get_by_role("link", name=re.compile("要約")).first.click()
    expect(page).to_have_url(re.compile(r"/apps/summarise$"))

    page.get_by_label(re.compile("ファイル")).set_input_files(str(PDF))
    page.get_by_label(re.compile("長さ")).select_option("短く")
    page.get_by_role("button", name=re.compile("実行")).click()

    part = page.locator("#app-output article.app-part")
    expect(part.locator(".status.ok")).to_be_visible(timeout=60_000)
    expect(part.locator(".text")).to_contain_text("偶数月")  # when the allowance is paid
    expect(part.locator(".text li")).to_have_count(3)  # 短く: three cited sentences
    expect(part).to_contain_text(re.compile(r"audit #\d+ · extractive"))
    page.screenshot(path=str(SHOTS / f"app-summarise-{width}px.png"), full_page=True)
    if width <= 390:
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"the page scrolls sideways at {width} px ({scroll} px wide)"
    assert problems == []


def test_an_app_that_must_write_says_so_in_one_line(browser, server):  # noqa: F811
    page, problems = login(browser, server)
    page.goto(f"{server.url}/apps/translate")
    page.get_by_label(re.compile("原文")).fill("窓口は午前8時30分に開きます。")
    page.get_by_role("button", name=re.compile("実行")).click()
    error = page.get_by_role("alert")
    expect(error).to_be_visible(timeout=30_000)
    expect(error).to_contain_text(re.compile("生成モデル|generative"))
    assert "\n" not in error.inner_text().strip() and "Traceback" not in error.inner_text()
    expect(page.locator("#app-output article")).to_have_count(0)
    assert [p for p in problems if "422" not in p and "Failed to load resource" not in p] == []

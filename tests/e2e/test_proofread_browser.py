"""The 公用文校正 page in a real browser (Debian's chromium via Playwright, headless): paste a text,
see each finding marked inline, accept one, ignore one, and read the corrected text. Screenshots
land in artifacts/e2e/ (git-ignored)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from server_fixtures.support import REPO, make_settings, run_server

CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "artifacts" / "e2e"
TEXT = "申請する時は、住民および事業者の手続きを確認して下さい。"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from run_server(make_settings(tmp_path_factory.mktemp("e2e-proofread")))


@pytest.fixture(scope="module")
def browser() -> Browser:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium", pytrace=False)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def test_paste_see_marks_accept_one_ignore_one(browser, server):
    page = browser.new_context(locale="ja-JP", viewport={"width": 1100, "height": 1000}).new_page()
    problems: list[str] = []
    # Script errors and anything the CSP blocks; the browser's own favicon request is not ours.
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" and "404" not in m.text else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    page.goto(f"{server.url}/login")
    page.get_by_label("APIキー").fill(server.keys["user"])
    page.get_by_role("button", name=re.compile("ログイン")).click()
    page.get_by_role("link", name=re.compile("校正")).click()
    expect(page).to_have_url(re.compile("/proofread$"))

    page.get_by_label("文章 Text", exact=True).fill(TEXT)
    page.get_by_role("button", name=re.compile("校正する")).click()
    marks = page.locator("#pf-doc mark.pf")
    expect(marks).to_have_count(4, timeout=30_000)
    expect(marks.nth(0)).to_have_text("時")
    expect(marks.nth(3)).to_have_text("下さい")
    expect(page.locator("#pf-list li").first).to_contain_text("形式名詞 / formal noun")
    expect(page.locator("#pf-list li").first).to_contain_text("「公用文における漢字使用等について（平成22年内閣訓令第1号）」1(2)キ")
    expect(page.locator("#pf-open")).to_have_text("4")
    page.screenshot(path=str(SHOTS / "proofread-findings.png"), full_page=True)

    first, second = page.locator("#pf-item-1"), page.locator("#pf-item-2")
    first.get_by_role("button", name=re.compile("採用")).click()
    expect(marks.nth(0)).to_have_text("とき")
    expect(marks.nth(0)).to_have_class(re.compile("accepted"))
    expect(first.locator(".pf-state")).to_have_text(re.compile("採用済み"))
    second.get_by_role("button", name=re.compile("無視")).click()
    expect(marks.nth(1)).to_have_class(re.compile("ignored"))
    expect(marks.nth(1)).to_have_text("および")
    expect(second.get_by_role("button", name=re.compile("採用"))).to_be_disabled()
    expect(page.locator("#pf-open")).to_have_text("2")
    expect(page.locator("#pf-output")).to_have_value("申請するときは、住民および事業者の手続きを確認して下さい。")

    page.get_by_role("button", name=re.compile("すべて採用")).click()
    expect(page.locator("#pf-output")).to_have_value("申請するときは、住民および事業者の手続を確認してください。")
    expect(page.locator("#pf-open")).to_have_text("0")
    page.screenshot(path=str(SHOTS / "proofread-accepted.png"), full_page=True)
    assert problems == []  # no script blocked by the CSP, no script error


def test_upload_a_file_and_clean_text(browser, server, tmp_path):
    page = browser.new_context(locale="ja-JP").new_page()
    page.goto(f"{server.url}/login")
    page.get_by_label("APIキー").fill(server.keys["user"])
    page.get_by_role("button", name=re.compile("ログイン")).click()
    page.goto(f"{server.url}/proofread")
    memo = tmp_path / "memo.txt"
    memo.write_bytes("書類を提出して下さい。".encode("cp932"))
    page.get_by_label("またはファイル").set_input_files(str(memo))
    page.get_by_role("button", name=re.compile("校正する")).click()
    expect(page.locator("#pf-result h2")).to_contain_text("memo.txt")
    expect(page.locator("#pf-doc mark.pf")).to_have_text("下さい")

    page.get_by_label("またはファイル").set_input_files([])
    page.get_by_label("文章 Text", exact=True).fill("書類を提出してください。")
    page.get_by_role("button", name=re.compile("校正する")).click()
    expect(page.locator("#pf-result")).to_contain_text("指摘はありません")

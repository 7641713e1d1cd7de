"""The API docs render in Chromium from the package alone: every file from this server, nothing
blocked by the Content-Security-Policy, the operations listed (an offline network sees the same)."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from e2e.test_chat_browser import browser  # noqa: F401  (the shared Chromium fixture)
from e2e.test_server_browser import SHOTS
from server_fixtures.support import make_settings, run_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    served = run_server(make_settings(tmp_path_factory.mktemp("docs")))
    yield next(served)
    next(served, None)


def test_api_docs_render_offline(browser, server):  # noqa: F811
    page = browser.new_context(locale="ja-JP", viewport={"width": 1200, "height": 900}).new_page()
    problems: list[str] = []
    hosts: set[str] = set()
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: hosts.add(urlparse(r.url).netloc) if r.url.startswith("http") else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(f"{server.url}/docs")
    expect(page.get_by_text("sekisho 関所").first).to_be_visible(timeout=30_000)
    expect(page.locator(".opblock-summary-path", has_text="/v1/chat/completions").first).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/apps/{app_id}/run").first).to_be_visible()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "api-docs.png"))
    assert hosts == {urlparse(server.url).netloc}
    assert problems == []

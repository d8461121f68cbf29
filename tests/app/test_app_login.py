"""With --api-key the browser gets only the login page until it gives the key; then the app
sends the key on every call."""
from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

KEY = "app-secret"


@pytest.fixture()
def keyed_url(tmp_path):
    from corral.server.app import create_app
    from corral.server.store_source import StoreModelSource
    from server_harness import serve_in_thread

    url, stop = serve_in_thread(create_app([], api_key=KEY, source=StoreModelSource(tmp_path), store_home=tmp_path))
    yield url
    stop()


def test_without_the_key_only_the_login_prompt_is_served(keyed_url):
    page = httpx.get(keyed_url + "/", headers={"Accept": "text/html"})
    assert "needs an API key" in page.text and "app.js" not in page.text
    assert httpx.get(keyed_url + "/app/static/app.js").status_code == 401
    assert httpx.get(keyed_url + "/app/api/conversations").status_code == 401
    assert httpx.post(keyed_url + "/app/login", json={"key": "wrong"}).status_code == 401


def test_login_once_then_every_call_carries_the_key(browser, keyed_url):
    context = browser.new_context()
    page = context.new_page()
    statuses: list[tuple[str, int]] = []
    page.on("response", lambda r: statuses.append((r.url, r.status)))
    page.goto(keyed_url + "/")
    page.fill("#login-key", "wrong")
    page.press("#login-key", "Enter")
    expect(page.locator("#login-error")).to_contain_text("wrong API key")
    page.fill("#login-key", KEY)
    with page.expect_navigation():  # the login page reloads into the app
        page.press("#login-key", "Enter")
    expect(page.locator("#tabs")).to_be_visible()
    page.click("#tabs button[data-panel=server]")
    expect(page.locator("#server-view")).to_contain_text("No model is loaded")
    page.reload()  # asked once: the key is remembered
    expect(page.locator("#tabs")).to_be_visible()
    api_calls = [(u, s) for u, s in statuses if "/app/api/" in u or "/api/tags" in u]
    assert api_calls and all(s == 200 for _, s in api_calls), api_calls
    context.close()

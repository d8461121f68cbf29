"""Keyboard, themes and phone width: Shift+Enter adds a line without sending, the theme choice is
kept across reloads, and no panel needs sideways scrolling at phone width."""
from __future__ import annotations

from playwright.sync_api import expect


def test_shift_enter_adds_a_line_and_enter_alone_sends(page):
    sent = []
    page.on("request", lambda r: sent.append(r.url) if r.url.endswith("/v1/chat/completions") else None)
    page.click("#prompt")
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    assert page.input_value("#prompt") == "first line\nsecond line" and sent == []


def test_the_theme_choice_is_kept_across_reloads(page):
    before = page.evaluate("document.documentElement.dataset.theme")
    page.click("#theme")
    after = page.evaluate("document.documentElement.dataset.theme")
    assert {before, after} == {"light", "dark"}
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", after)


def test_no_panel_scrolls_sideways_at_phone_width(page):
    page.set_viewport_size({"width": 390, "height": 760})
    filled = {"chat": "#prompt", "models": "#models-list table", "discover": "#hub-query", "server": "#server-view .card"}
    for panel, content in filled.items():
        page.click(f"#tabs button[data-panel={panel}]")
        expect(page.locator(content).first).to_be_visible(timeout=20_000)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the {panel} panel is {width} px wide at a 390 px viewport"

"""My models in the browser: copy a model under a new name, then delete the copy."""
from __future__ import annotations

from playwright.sync_api import expect


def test_copy_then_delete(page):
    page.click("#tabs button[data-panel=models]")
    row = page.locator("tr[data-model='tiny:latest']")
    expect(row).to_be_visible(timeout=20_000)
    page.once("dialog", lambda d: d.accept("tiny-copy"))
    row.locator("button", has_text="Copy").click()
    copy = page.locator("tr[data-model='tiny-copy:latest']")
    expect(copy).to_be_visible(timeout=20_000)
    expect(copy).to_contain_text("Q8_0")
    page.once("dialog", lambda d: d.accept())
    copy.locator("button", has_text="Delete").click()
    expect(copy).to_have_count(0, timeout=20_000)
    expect(row).to_be_visible()

"""Discover in the browser: search the fake Hub, see fit hints, download a GGUF with progress,
find it in My models, chat with it; the offline message when the Hub is unreachable."""
from __future__ import annotations

import os
import re

from app_harness import GGUF_REPO, HUGE_REPO, unload_all
from playwright.sync_api import expect
from app_harness import set_max_tokens

PULLED = f"hf.co/{GGUF_REPO}:F16"


def screenshot(page, name: str) -> None:
    """Save the page as docs' screenshot when CORRAL_APP_SCREENSHOTS names a folder."""
    folder = os.environ.get("CORRAL_APP_SCREENSHOTS")
    if folder:
        page.evaluate("(t => { t.style.transition = 'none'; t.className = 'toast'; })(document.getElementById('toast'))")  # no toast over the page
        page.screenshot(path=os.path.join(folder, f"{name}.png"))


def open_repo(page, query: str, repo: str):
    page.click("#tabs button[data-panel=discover]")
    page.fill("#hub-query", query)
    page.press("#hub-query", "Enter")
    card = page.locator(f".repo[data-repo='{repo}']")
    expect(card).to_be_visible(timeout=20_000)
    card.locator("button", has_text="Files").click()
    expect(page.locator("#hub-repo h3")).to_have_text(repo, timeout=20_000)


def test_search_download_then_chat_with_the_model(page, fake_hub, app_server):
    unload_all(app_server)  # the fit hints below count the whole budget
    open_repo(page, "tiny-qwen", GGUF_REPO)
    row = page.locator("#hub-repo tr[data-quant=F16]")
    expect(row.locator("[data-fit]")).to_have_attribute("data-fit", "fits")
    row.locator("button", has_text="Download").click()
    card = page.locator(f".download[data-name='{PULLED}']")
    expect(card).to_have_attribute("data-state", "done", timeout=60_000)
    assert int(card.get_attribute("data-updates")) >= 2  # progress was reported while it ran
    # a whole download, not only the ranged reads of its header for the fit hint
    assert [r for r in fake_hub.downloads("tiny-qwen-F16.gguf") if r[2] is None or r[2].endswith("-")]
    screenshot(page, "discover")

    page.click("#tabs button[data-panel=models]")
    row = page.locator(f"tr[data-model='{PULLED}']")
    expect(row).to_be_visible(timeout=20_000)
    expect(row).to_contain_text("qwen2")
    expect(row).to_contain_text("F16")
    expect(row).to_contain_text(GGUF_REPO)
    expect(row.locator("[data-fit]")).to_have_attribute("data-fit", "fits")
    row.locator("button", has_text="Details").click()
    details = page.locator("tr.details:visible")
    expect(details.locator("summary", has_text="GGUF metadata")).to_be_visible()
    expect(details.locator(".gguf-metadata")).to_contain_text("general.architecture")
    expect(details).to_contain_text("tiny-qwen-F16.gguf")
    screenshot(page, "models")

    row.locator("button", has_text="Chat").click()
    expect(page.locator(".toast")).to_contain_text(f"{PULLED} is loaded", timeout=60_000)
    set_max_tokens(page, 8)
    page.fill("#prompt", "Hello there")
    page.press("#prompt", "Enter")
    reply = page.locator(".msg.assistant").last
    expect(reply.locator(".meta")).to_contain_text("tokens", timeout=30_000)
    expect(reply.locator(".role")).to_have_text(PULLED)
    screenshot(page, "chat")

    page.click("#tabs button[data-panel=server]")
    expect(page.locator("#loaded-models")).to_contain_text(PULLED, timeout=10_000)
    if os.environ.get("CORRAL_APP_SCREENSHOTS"):  # the server's token-rate history has the reply in it
        expect(page.locator("svg.spark")).to_be_visible(timeout=20_000)
    screenshot(page, "server")

    if os.environ.get("CORRAL_APP_SCREENSHOTS"):  # the README's phone-width and dark-theme views
        page.click("#tabs button[data-panel=chat]")
        page.click("#theme")
        screenshot(page, "chat-dark")
        page.set_viewport_size({"width": 390, "height": 760})
        page.wait_for_timeout(400)  # the sidebar slides away
        screenshot(page, "chat-phone")


def test_too_big_file_is_flagged(page):
    open_repo(page, "huge", HUGE_REPO)
    badge = page.locator("#hub-repo tr[data-quant=Q4_K_M] [data-fit]")
    expect(badge).to_have_attribute("data-fit", "too big")


def test_unreachable_hub_says_offline_and_the_rest_works(page, monkeypatch):
    from server_harness import free_port

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    page.click("#tabs button[data-panel=discover]")
    page.fill("#hub-query", "anything")
    page.press("#hub-query", "Enter")
    expect(page.locator("#hub-offline")).to_contain_text("cannot be reached", timeout=20_000)
    page.click("#tabs button[data-panel=models]")
    expect(page.locator("tr[data-model='tiny:latest']")).to_be_visible()


def test_cancel_then_resume_a_download(page, fake_hub):
    from app_harness import RESUME_REPO

    name = f"hf.co/{RESUME_REPO}:Q4_0"
    fake_hub.seconds_per_chunk = 0.5
    try:
        open_repo(page, "q4", RESUME_REPO)
        page.locator("#hub-repo tr[data-quant=Q4_0] button", has_text="Download").click()
        card = page.locator(f".download[data-name='{name}']")
        expect(card).to_have_attribute("data-updates", re.compile(r"\d+"), timeout=20_000)
        expect(card.locator(".download-text")).to_contain_text(" left")
        card.locator("button", has_text="Cancel").click()
        expect(card).to_have_attribute("data-state", "cancelled")
    finally:
        fake_hub.seconds_per_chunk = 0.05
    card.locator("button", has_text="Resume").click()
    expect(card).to_have_attribute("data-state", "done", timeout=60_000)
    # the downloads' requests; closed ranges from 0 are the fit hint's reads of the header
    ranges = [r for _, _, r in fake_hub.downloads("tiny-qwen-Q4_0.gguf") if not (r and re.fullmatch(r"bytes=0-\d+", r))]
    assert ranges[0] is None and ranges[-1] and ranges[-1] != "bytes=0-", ranges  # the second GET resumed

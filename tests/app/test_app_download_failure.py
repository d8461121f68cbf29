"""A download that fails shows the reason in words and a Retry button, and the retry completes it
once the Hub serves the file right."""
from __future__ import annotations

from playwright.sync_api import expect
from test_app_discover import open_repo

BAD_REPO = "acme/flaky-qwen-GGUF"


def test_a_failed_download_says_why_and_retry_completes_it(page, fake_hub, tiny_models):
    data = tiny_models("qwen2", "Q8_0").read_bytes()
    repo = fake_hub.add_repo(BAD_REPO, {"flaky-qwen-Q8_0.gguf": data})
    repo.advertise["flaky-qwen-Q8_0.gguf"] = data[:-1] + b"\1"  # the Hub's checksum will not match the bytes
    name = f"hf.co/{BAD_REPO}:Q8_0"
    open_repo(page, "flaky", BAD_REPO)
    page.locator("#hub-repo tr[data-quant=Q8_0] button", has_text="Download").click()
    card = page.locator(f".download[data-name='{name}']")
    expect(card).to_have_attribute("data-state", "failed", timeout=60_000)
    expect(card.locator(".download-text")).to_contain_text("Failed: ")
    assert len(card.locator(".download-text").inner_text()) > len("Failed: ") + 10  # a reason, in words
    repo.advertise.clear()  # the Hub is fixed
    card.locator("button", has_text="Retry").click()
    expect(card).to_have_attribute("data-state", "done", timeout=60_000)
    page.click("#tabs button[data-panel=models]")
    expect(page.locator(f"tr[data-model='{name}']")).to_be_visible(timeout=20_000)

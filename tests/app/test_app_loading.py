"""Loading a model from the chat: a progress bar fed by the server's count of tensors loaded, a
failure shown in words with a Retry button, and the conversation's context length reaching the engine."""
from __future__ import annotations

import json
import re

import httpx
from app_harness import BROKEN_MODEL, LOCAL_MODEL, SLOW_MODEL, set_max_tokens, unload_all
from playwright.sync_api import expect


def test_loading_shows_the_servers_progress(page, app_server):
    unload_all(app_server)
    page.select_option("#model-picker", SLOW_MODEL)
    label = page.locator("#load-label")
    expect(label).to_have_text(re.compile(r"\d+ of \d+ tensors"), timeout=30_000)
    done, total = map(int, re.search(r"(\d+) of (\d+) tensors", label.inner_text()).groups())
    assert total > 2 and done < total
    expect(page.locator("#load-progress")).not_to_have_class(re.compile("indeterminate"))
    # the bar moves with the server's count before the load ends
    page.wait_for_function(f"Number(document.querySelector('#load-progress')?.getAttribute('aria-valuenow')) > {100 * done // total}",
                           polling=50, timeout=30_000)
    expect(page.locator(".toast")).to_contain_text(f"{SLOW_MODEL} is loaded", timeout=60_000)
    expect(page.locator(".loading-model")).to_be_hidden()
    unload_all(app_server)


def test_a_failed_load_says_why_and_retry_loads_again(page, app_server):
    page.select_option("#model-picker", BROKEN_MODEL)
    error = page.locator("#load-error")
    expect(error).to_contain_text(f"Could not load {BROKEN_MODEL}: ", timeout=30_000)
    assert len(error.inner_text()) > len(f"Could not load {BROKEN_MODEL}: ") + 10  # a reason, in words
    with page.expect_request(lambda r: r.url.endswith("/api/generate") and r.method == "POST"):
        page.click("#load-retry")
    expect(page.locator("#load-error")).to_contain_text(f"Could not load {BROKEN_MODEL}: ", timeout=30_000)

    # a load that fails on the way (the connection drops), then succeeds when retried
    page.route("**/api/generate", lambda route: route.abort())
    page.select_option("#model-picker", LOCAL_MODEL)
    expect(page.locator("#load-error")).to_contain_text("cannot reach the corral server", timeout=30_000)
    page.unroute("**/api/generate")
    page.click("#load-retry")
    expect(page.locator(".toast")).to_contain_text(f"{LOCAL_MODEL} is loaded", timeout=60_000)
    expect(page.locator("#load-error")).to_have_count(0)


def test_the_conversations_context_length_reaches_the_engine(page, app_server):
    loads = []
    page.on("request", lambda r: loads.append(json.loads(r.post_data)) if r.url.endswith("/api/generate") else None)
    page.select_option("#model-picker", LOCAL_MODEL)
    expect(page.locator(".toast")).to_contain_text(f"{LOCAL_MODEL} is loaded", timeout=60_000)
    page.click("#new-chat")
    page.click("#settings-toggle")
    page.fill("#settings input[name=context_length]", "512")
    page.press("#settings input[name=context_length]", "Tab")
    set_max_tokens(page, 3)
    page.fill("#prompt", "How long is your context?")
    page.press("#prompt", "Enter")
    expect(page.locator(".msg.assistant .meta").last).to_contain_text("tokens", timeout=60_000)
    assert {"model": LOCAL_MODEL, "options": {"num_ctx": 512}} in loads
    (entry,) = [m for m in httpx.get(f"{app_server}/api/ps").json()["models"] if m["name"] == LOCAL_MODEL]
    assert entry["context_length"] == 512  # the engine runs at the conversation's length
    unload_all(app_server)  # the other tests expect the server's default length


def test_a_model_too_big_for_free_memory_says_so_before_loading(page, app_server):
    from app_harness import HUGE_LOCAL_MODEL

    unload_all(app_server)
    loads = []
    page.on("request", lambda r: loads.append(r.url) if r.url.endswith("/api/generate") else None)
    page.select_option("#model-picker", HUGE_LOCAL_MODEL)
    warning = page.locator("#fit-warning")
    expect(warning).to_contain_text(f"{HUGE_LOCAL_MODEL} does not fit: it needs ~", timeout=30_000)
    expect(warning).to_contain_text("is free")
    assert loads == []  # nothing was loaded behind the warning
    page.click("#load-anyway")
    expect(page.locator("#load-error")).to_contain_text(f"Could not load {HUGE_LOCAL_MODEL}: ", timeout=30_000)
    assert len(loads) == 1


def test_load_from_my_models_shows_progress_too(page, app_server):
    unload_all(app_server)
    page.click("#tabs button[data-panel=models]")
    row = page.locator(f"tr[data-model='{SLOW_MODEL}']")
    row.get_by_role("button", name="Load", exact=True).click()
    expect(row.locator(".status")).to_have_text(re.compile(r"loading: \d+ of \d+ tensors"), timeout=30_000)
    expect(row.locator(".status")).to_have_text("loaded", timeout=60_000)
    unload_all(app_server)


def test_a_reply_that_has_to_load_its_model_shows_the_load(page, app_server):
    unload_all(app_server)
    page.select_option("#model-picker", SLOW_MODEL)
    expect(page.locator(".toast")).to_contain_text(f"{SLOW_MODEL} is loaded", timeout=60_000)
    unload_all(app_server)  # it went idle and was unloaded: the next request loads it again
    set_max_tokens(page, 3)
    page.fill("#prompt", "Are you there?")
    page.press("#prompt", "Enter")
    expect(page.locator("#load-label")).to_have_text(re.compile(r"\d+ of \d+ tensors"), timeout=30_000)
    expect(page.locator(".msg.assistant .meta").last).to_contain_text("tokens", timeout=60_000)
    expect(page.locator(".loading-model")).to_be_hidden()
    unload_all(app_server)

"""Chat in the browser: pick a model, send, watch the reply stream, stop, reload and find it."""
from __future__ import annotations

import json

from app_harness import LOCAL_MODEL, pick_model, set_max_tokens
from playwright.sync_api import expect


def test_send_message_streams_reply_with_stats_and_survives_reload(page, app_server):
    pick_model(page)
    set_max_tokens(page, 12)
    page.fill("#prompt", "Say hello in one word")
    page.press("#prompt", "Enter")
    reply = page.locator(".msg.assistant").last
    expect(reply.locator(".meta")).to_contain_text("tokens", timeout=30_000)
    expect(reply.locator(".meta")).to_contain_text("tok/s")
    expect(reply.locator(".meta")).to_contain_text("TTFT")
    assert reply.locator(".body").inner_text().strip()
    expect(page.locator("#conv-title")).to_have_text("Say hello in one word")

    page.reload()
    expect(page.locator("#conversations li button", has_text="Say hello in one word")).to_be_visible()
    page.locator("#conversations li button", has_text="Say hello in one word").first.click()
    expect(page.locator(".msg.user .body")).to_have_text("Say hello in one word")
    expect(page.locator(".msg.assistant .meta")).to_contain_text("tokens")


def test_stop_keeps_the_partial_reply(page, app_server):
    def endless(route):  # no early end-of-sequence: the reply runs until stopped
        body = json.loads(route.request.post_data)
        route.continue_(post_data=json.dumps({**body, "ignore_eos": True, "max_tokens": 4000}))

    page.route("**/v1/chat/completions", endless)
    pick_model(page)
    page.click("#new-chat")
    page.fill("#prompt", "Count forever")
    page.press("#prompt", "Enter")
    expect(page.locator("#stop")).to_be_visible(timeout=30_000)
    page.wait_for_function("[...document.querySelectorAll('.msg.assistant .body')].pop()?.textContent.length > 0",
                           polling=20, timeout=30_000)
    page.keyboard.press("Escape")
    meta = page.locator(".msg.assistant .meta").last
    expect(meta).to_contain_text("stopped", timeout=10_000)
    expect(page.locator("#send")).to_be_visible()
    tokens = int(meta.locator(".stat").first.inner_text().split()[0])
    assert 0 < tokens < 4000


def test_server_gone_mid_stream_keeps_what_arrived_and_offers_retry(page, app_server):
    def cut(route):  # two chunks, then the connection ends without [DONE]
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": LOCAL_MODEL,
                 "choices": [{"index": 0, "delta": {"content": "Partial "}, "finish_reason": None}]}
        route.fulfill(status=200, content_type="text/event-stream",
                      body=f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(chunk)}\n\n")

    page.route("**/v1/chat/completions", cut)
    pick_model(page)
    set_max_tokens(page, 6)
    page.click("#new-chat")
    page.fill("#prompt", "Tell me something")
    page.press("#prompt", "Enter")
    error = page.locator("#stream-error")
    expect(error).to_contain_text("broke mid-reply", timeout=30_000)
    expect(page.locator(".msg.assistant .body").last).to_have_text("Partial Partial")
    page.unroute("**/v1/chat/completions")
    error.locator("button", has_text="Retry").click()
    expect(page.locator(".msg.assistant .meta").last).to_contain_text("tokens", timeout=30_000)
    expect(page.locator("#stream-error")).to_have_count(0)
    assert page.locator(".msg.assistant").count() == 1


def test_two_tabs_on_one_conversation_keep_both_messages(page, app_server):
    import httpx

    pick_model(page)
    set_max_tokens(page, 4)
    page.click("#new-chat")
    page.fill("#prompt", "first from tab A")
    page.press("#prompt", "Enter")
    expect(page.locator(".msg.assistant .meta").last).to_contain_text("tokens", timeout=30_000)

    tab_b = page.context.new_page()
    tab_b.goto(app_server + "/")
    tab_b.locator("#conversations li button", has_text="first from tab A").first.click()
    expect(tab_b.locator(".msg.user .body")).to_have_text(["first from tab A"])

    page.fill("#prompt", "second from tab A")
    page.press("#prompt", "Enter")
    expect(page.locator(".msg.assistant .meta")).to_have_count(2, timeout=30_000)
    tab_b.fill("#prompt", "from tab B, which had not seen A's second message")
    tab_b.press("#prompt", "Enter")
    expect(tab_b.locator(".msg.assistant .meta")).to_have_count(3, timeout=30_000)

    cid = tab_b.locator("#conversations li button.current").get_attribute("data-id")
    conv = httpx.get(f"{app_server}/app/api/conversations/{cid}").json()
    users = [m["content"] for m in conv["messages"] if m["role"] == "user"]
    assert users == ["first from tab A", "second from tab A", "from tab B, which had not seen A's second message"]
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant"] * 3
    tab_b.close()


def test_a_model_that_cannot_load_says_why(page):
    from app_harness import BROKEN_MODEL

    page.select_option("#model-picker", BROKEN_MODEL)
    expect(page.locator("#load-error")).to_contain_text(f"Could not load {BROKEN_MODEL}: ", timeout=30_000)
    assert len(page.locator("#load-error").inner_text()) > len(f"Could not load {BROKEN_MODEL}: ") + 10


def test_presets_edit_regenerate_search_and_export(page, app_server):
    bodies = []
    page.on("request", lambda r: bodies.append(json.loads(r.post_data)) if r.url.endswith("/v1/chat/completions") else None)
    pick_model(page)
    page.click("#new-chat")
    page.click("#settings-toggle")
    page.select_option("#settings select[name=preset]", "Precise")
    page.fill("#settings textarea[name=system]", "Answer in French.")
    page.press("#settings textarea[name=system]", "Tab")
    set_max_tokens(page, 3)
    page.fill("#prompt", "Name a colour")
    page.press("#prompt", "Enter")
    expect(page.locator(".msg.assistant .meta")).to_have_count(1, timeout=30_000)
    sent = bodies[-1]
    assert (sent["temperature"], sent["top_p"], sent["top_k"], sent["max_tokens"]) == (0.2, 0.9, 20, 3)
    assert sent["messages"][0] == {"role": "system", "content": "Answer in French."}

    with page.expect_response("**/v1/chat/completions"):
        page.locator(".msg.assistant .regenerate").click()
    expect(page.locator(".msg.assistant .regenerate")).to_be_visible(timeout=30_000)
    expect(page.locator(".msg.assistant .meta")).to_have_count(1)
    assert len(bodies) == 2 and bodies[1]["messages"] == bodies[0]["messages"]

    page.locator(".msg.user .edit").click()
    page.fill(".msg.user textarea", "Name a fruit")
    with page.expect_response("**/v1/chat/completions"):
        page.press(".msg.user textarea", "Enter")
    expect(page.locator(".msg.user .body")).to_have_text(["Name a fruit"], timeout=30_000)
    expect(page.locator(".msg.assistant .regenerate")).to_be_visible(timeout=30_000)
    assert bodies[-1]["messages"][-1] == {"role": "user", "content": "Name a fruit"}

    page.fill("input[aria-label='Search conversations']", "fruit")
    expect(page.locator("#conversations li button")).to_have_text(["Name a colour"])
    with page.expect_download() as download:
        page.click("button:text-is('Markdown')")
    text = open(download.value.path()).read()
    assert text.startswith("# Name a colour") and "Answer in French." in text and "Name a fruit" in text

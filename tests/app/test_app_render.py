"""How replies render: Markdown, highlighted code with a working copy button, and no markup
from the model ever reaching the page as HTML. The reply is a canned stream (routed in the
browser), so this checks the page alone."""
from __future__ import annotations

import json

from app_harness import LOCAL_MODEL
from playwright.sync_api import expect
from app_harness import pick_model

REPLY = ("## Plan\n\nUse **bold** and `inline` code:\n\n```python\ndef add(a, b):\n    return a + b  # sum\n```\n\n"
         "- one\n- two\n\n<img src=x onerror=\"window.injected=1\">")


def canned(route):
    chunks = [REPLY[i:i + 7] for i in range(0, len(REPLY), 7)]
    lines = []
    for piece in chunks:
        lines.append({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": LOCAL_MODEL,
                      "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    lines.append({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": LOCAL_MODEL, "choices": [],
                  "usage": {"prompt_tokens": 3, "completion_tokens": len(chunks), "total_tokens": 3 + len(chunks)}})
    body = "".join(f"data: {json.dumps(line)}\n\n" for line in lines) + "data: [DONE]\n\n"
    route.fulfill(status=200, content_type="text/event-stream", body=body)


def test_markdown_code_highlighting_copy_and_escaping(page):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.route("**/v1/chat/completions", canned)
    pick_model(page)
    page.click("#new-chat")
    page.fill("#prompt", "Show me code")
    page.press("#prompt", "Enter")
    reply = page.locator(".msg.assistant").last
    expect(reply.locator(".meta")).to_contain_text(f"{-(-len(REPLY) // 7)} tokens", timeout=30_000)
    body = reply.locator(".body")
    expect(body.locator("h2")).to_have_text("Plan")
    expect(body.locator("strong")).to_have_text("bold")
    expect(body.locator("li")).to_have_text(["one", "two"])
    expect(body.locator("code[data-lang=python] .tok-keyword").first).to_have_text("def")
    expect(body.locator("code[data-lang=python] .tok-comment")).to_have_text("# sum")
    expect(body).to_contain_text('<img src=x onerror="window.injected=1">')  # shown as text
    assert body.locator("img").count() == 0 and page.evaluate("window.injected") is None
    body.locator(".copy-code").click()
    assert page.evaluate("navigator.clipboard.readText()") == "def add(a, b):\n    return a + b  # sum"

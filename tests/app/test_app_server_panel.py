"""The Server panel: loaded models and the snippets it offers, which must run as shown."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import httpx
from app_harness import LOCAL_MODEL
from playwright.sync_api import expect


def test_server_panel_lists_loaded_models_and_its_snippets_run(page, app_server):
    httpx.post(f"{app_server}/api/generate", json={"model": LOCAL_MODEL, "keep_alive": "5m"}, timeout=60)
    page.click("#tabs button[data-panel=server]")
    expect(page.locator("#loaded-models")).to_contain_text(LOCAL_MODEL, timeout=10_000)
    expect(page.locator("#server-view")).to_contain_text(f"{app_server}/v1")
    snippets = page.locator(".snippet pre").all_inner_texts()
    curl, openai_code = snippets[0], snippets[1]
    assert LOCAL_MODEL in curl and LOCAL_MODEL in openai_code
    if shutil.which("curl"):
        reply = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=120)
        assert json.loads(reply.stdout)["object"] == "chat.completion", reply.stdout + reply.stderr
    ran = subprocess.run([sys.executable, "-c", openai_code], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr


def test_a_freshly_opened_tab_shows_the_token_rate_history_kept_by_the_server(browser, app_server):
    from server_harness import wait_until

    r = httpx.post(f"{app_server}/api/generate", json={"model": LOCAL_MODEL, "prompt": "Count", "stream": False,
                                                       "options": {"num_predict": 16, "temperature": 0}}, timeout=60)
    assert r.status_code == 200 and r.json()["eval_count"] > 0

    def history():
        return httpx.get(f"{app_server}/app/api/system", timeout=10).json()["token_rates"]

    # the server samples on its own: no page was open while the tokens were made
    assert wait_until(lambda: any(p["tps"] > 0 for p in history()) and len(history()) >= 2, timeout_s=20)
    context = browser.new_context()
    page = context.new_page()
    page.goto(app_server + "/#server")
    expect(page.locator("svg.spark")).to_be_visible(timeout=10_000)
    expect(page.locator("#server-view")).to_contain_text("peak")
    context.close()

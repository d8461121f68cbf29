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

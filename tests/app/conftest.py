"""Browser tests of the web app: Debian's Chromium driven by Playwright against a real server on
loopback (tiny models, a loopback fake Hub). Skipped, with the reason, where Chromium or
Playwright is missing; set CORRAL_CHROMIUM to use another Chromium binary."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "server"))
from server_harness import serve_in_thread  # noqa: E402

from app_fake_hub import AppFakeHub  # noqa: E402
from app_harness import (  # noqa: E402
    APP_ENGINE_KWARGS, BROKEN_MODEL, FOLDER_REPO, GGUF_REPO, HUGE_LOCAL_MODEL, HUGE_REPO, HUGE_SIZE, LOCAL_MODEL,
    MEMORY_BUDGET,
    RESUME_REPO, SLOW_MODEL, chromium_path, slowed_loader, write_gguf_without_tensors,
)


@pytest.fixture(scope="module")  # not longer: Playwright's sync API holds the thread's event loop while it runs
def browser():
    path = chromium_path()
    if path is None:
        pytest.skip("browser tests skipped: Chromium not found (apt-get install chromium, or set CORRAL_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests skipped: Playwright for Python is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def fake_hub(tiny_models):
    hub = AppFakeHub(seconds_per_chunk=0.05)
    hub.add_repo(GGUF_REPO, {"tiny-qwen-F16.gguf": tiny_models("qwen2", "F16").read_bytes(), "README.md": b"# tiny"})
    hub.add_repo(HUGE_REPO, {"huge-Q4_K_M.gguf": b"\0" * HUGE_SIZE})
    hub.add_repo(FOLDER_REPO, {"config.json": b"{}", "model.safetensors": b"\0" * 4096})
    hub.add_repo(RESUME_REPO, {"tiny-qwen-Q4_0.gguf": tiny_models("qwen2", "Q4_0").read_bytes()})
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture(scope="session")
def app_server(tiny_models, tmp_path_factory, fake_hub):
    """A real server with local models (`tiny:latest`, a Qwen2 Q8_0 GGUF; `slow:latest`, the same
    file loading slowly; `broken:latest`, which cannot load) and the fake Hub."""
    from corral import store
    from corral.server.app import create_app
    from corral.server.store_source import StoreModelSource

    home = tmp_path_factory.mktemp("app-home")
    gguf = tiny_models("qwen2", "Q8_0")
    # replies without max_tokens (the Server panel's snippets) stop soon: random weights rarely end
    store.create(LOCAL_MODEL, f"FROM {gguf}\nPARAMETER num_predict 24\n", home=home)
    broken = write_gguf_without_tensors(home / "broken.gguf")
    store.create(BROKEN_MODEL, f"FROM {broken}\n", home=home)
    huge = write_gguf_without_tensors(home / "huge.gguf", padding_bytes=MEMORY_BUDGET + (4 << 20))
    store.create(HUGE_LOCAL_MODEL, f"FROM {huge}\n", home=home)
    store.create(SLOW_MODEL, f"FROM {gguf}\nPARAMETER num_predict 24\n", home=home)
    old = os.environ.get("HF_ENDPOINT")
    os.environ["HF_ENDPOINT"] = fake_hub.url
    app = create_app([], source=StoreModelSource(home), engine_loader=slowed_loader(**APP_ENGINE_KWARGS),
                     memory_budget=MEMORY_BUDGET, store_home=home)
    url, stop = serve_in_thread(app)
    yield url
    stop()
    if old is None:
        os.environ.pop("HF_ENDPOINT", None)
    else:
        os.environ["HF_ENDPOINT"] = old


@pytest.fixture()
def page(browser, app_server):
    """A fresh browser page on the app; fails the test if the page asks any other host."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    foreign: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(app_server) else foreign.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app_server + "/")
    yield page
    context.close()
    assert not foreign, f"the page asked hosts other than the server: {foreign}"
    assert not errors, f"JavaScript errors: {errors}"

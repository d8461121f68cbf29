"""Shared by the web app's tests: the test server's models and repos, and page helpers."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from server_harness import ENGINE_KWARGS

APP_ENGINE_KWARGS = {**ENGINE_KWARGS, "max_model_len": 4096}  # room for a reply that runs until stopped
MEMORY_BUDGET = 24 << 20  # bytes: the tiny models fit, the "huge" repo's file does not
HUGE_SIZE = 40 << 20
LOCAL_MODEL = "tiny:latest"
BROKEN_MODEL = "broken:latest"  # a valid GGUF file that lacks the model's tensors: it cannot load
HUGE_LOCAL_MODEL = "huge-local:latest"  # a GGUF file bigger than MEMORY_BUDGET (and no real model)
SLOW_MODEL = "slow:latest"  # tiny:latest's file, loaded as from a slow disk: its progress can be watched
SLOW_TENSOR_S = 0.04  # seconds each of its weight tensors takes to load
GGUF_REPO = "acme/tiny-qwen-GGUF"
HUGE_REPO = "acme/huge-GGUF"
RESUME_REPO = "acme/tiny-qwen-q4-GGUF"
FOLDER_REPO = "acme/a-safetensors-model"


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CORRAL_CHROMIUM"), "chromium", "chromium-browser"):
        found = candidate and shutil.which(candidate)
        if found:
            return found
    return None


def slowed_loader(**engine_kwargs):
    """The server's real engine loader; SLOW_MODEL's tensors each take SLOW_TENSOR_S more to load."""
    import time

    from corral.server.app import async_engine_loader

    load = async_engine_loader(**engine_kwargs)

    def loader(resolved, progress):
        if resolved.name == SLOW_MODEL:
            report = progress.report

            def slow_report(done, total):
                time.sleep(SLOW_TENSOR_S)
                report(done, total)

            progress.report = slow_report
        return load(resolved, progress)

    return loader


def write_gguf_without_tensors(path: Path, padding_bytes: int = 0) -> Path:
    """A GGUF file with a Llama header and no usable weights; `padding_bytes` of zeros in one extra
    tensor make it as big as a model that does not fit."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    if padding_bytes:
        writer.add_tensor("padding.weight", np.zeros(padding_bytes // 4, dtype=np.float32))
    writer.add_context_length(64)
    writer.add_embedding_length(8)
    writer.add_block_count(1)
    writer.add_head_count(2)
    writer.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def pick_model(page, name: str = LOCAL_MODEL) -> None:
    """Choose `name` in the chat's model picker and wait until it is loaded."""
    from playwright.sync_api import expect

    page.select_option("#model-picker", name)
    expect(page.locator(".toast")).to_contain_text(f"{name} is loaded", timeout=60_000)


def set_max_tokens(page, n: int) -> None:
    """Set the open conversation's (or the next one's) max tokens in the settings pane."""
    if page.locator("#settings").is_hidden():
        page.click("#settings-toggle")
    page.fill("#settings input[name=max_tokens]", str(n))
    page.press("#settings input[name=max_tokens]", "Tab")
    page.click("#settings button:text('Close')")


def unload_all(url: str) -> None:
    """Unload every loaded model, so fit hints see the whole memory budget again."""
    import httpx

    for m in httpx.get(f"{url}/api/ps", timeout=30).json()["models"]:
        httpx.post(f"{url}/api/generate", json={"model": m["name"], "keep_alive": 0}, timeout=60)

"""Discover's fit hint for files still on the Hub counts weights plus the KV cache at the chosen
context, as the server counts them when it loads: the GGUF header comes from a range request to
the (loopback, fake) Hub, a folder's shape from its config.json."""
from __future__ import annotations

import json

import httpx
from app_harness import GGUF_REPO, MEMORY_BUDGET, unload_all

from corral.loader.gguf_header import parse_metadata_prefix
from corral.server import fit

CONFIGURED_FOLDER = "acme/configured-folder"


def _repo(url, repo, context):
    r = httpx.get(f"{url}/app/api/hub/repo", params={"repo": repo, "context": context}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_remote_gguf_hint_counts_the_kv_cache_read_from_its_header(app_server, fake_hub, tiny_models):
    unload_all(app_server)
    local = tiny_models("qwen2", "F16")
    per_token = fit.kv_bytes_per_token(local, "gguf")  # what the server counts when it loads this file
    assert per_token
    before = len(fake_hub.downloads("tiny-qwen-F16.gguf"))
    small = _repo(app_server, GGUF_REPO, 256)
    (choice,) = small["gguf"]
    assert choice["fit"]["kv_known"] and choice["fit"]["kv"] == per_token * 256
    assert choice["fit"]["need"] == choice["size"] + per_token * 256 and choice["fit"]["fit"] == "fits"
    from corral.loader.gguf_file import GGUFFile

    assert small["context_length"] == GGUFFile(local).metadata["qwen2.context_length"]
    # the header came from ranged reads, not a download of the whole file
    reads = fake_hub.downloads("tiny-qwen-F16.gguf")[before:]
    assert reads and all(r[2] and r[2].startswith("bytes=0-") and not r[2].endswith("-") for r in reads)

    # a context whose cache alone passes the free memory turns the same file "too big"
    big_context = 2 * MEMORY_BUDGET // per_token
    big = _repo(app_server, GGUF_REPO, big_context)["gguf"][0]["fit"]
    assert big["fit"] == "too big" and big["need"] == choice["size"] + per_token * big_context


def test_remote_folder_hint_reads_its_config(app_server, fake_hub, tiny_models):
    folder = tiny_models("qwen3", "hf")
    config = (folder / "config.json").read_bytes()
    fake_hub.add_repo(CONFIGURED_FOLDER, {"config.json": config, "model.safetensors": b"\0" * 2048})
    listing = _repo(app_server, CONFIGURED_FOLDER, 100)
    assert listing["folder"]["fit"]["kv"] == fit.kv_bytes_per_token(folder, "hf") * 100
    assert listing["folder"]["fit"]["kv_known"]


def test_metadata_prefix_reads_what_is_whole_and_says_whether_that_is_all(tiny_models):
    data = tiny_models("qwen2", "Q8_0").read_bytes()
    whole, complete = parse_metadata_prefix(data)
    assert complete and whole["general.architecture"] == "qwen2"
    seen, partial = 0, 0
    for cut in range(8, len(data), 97):
        part, complete = parse_metadata_prefix(data[:cut])
        assert list(part) == list(whole)[:len(part)] and len(part) >= seen
        seen = len(part)
        if complete:
            assert part.keys() == whole.keys()
            break
        partial += bool(part)
    assert complete and partial > 0
    assert json.dumps(fit.gguf_kv_from_metadata(whole)) == json.dumps(fit.kv_bytes_per_token(tiny_models("qwen2", "Q8_0"), "gguf"))

"""Fixtures for store tests: a store root, a loopback fake Hub, and tiny real model files."""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from store_fake_hub import FakeHub

GGUF_REPO = "acme/tiny-GGUF"
HF_REPO = "acme/tiny"


def tiny_gguf(name: str = "tiny", tag: str = "") -> bytes:
    """A valid little GGUF (llama architecture, two F32 tensors); `tag` changes the bytes."""
    import gguf

    buf_path = Path(os.environ["CORRAL_TEST_TMP"]) / f"build-{name}-{tag}.gguf"
    writer = gguf.GGUFWriter(str(buf_path), "llama")
    writer.add_name(f"{name} {tag}".strip())
    writer.add_context_length(256)
    writer.add_embedding_length(8)
    writer.add_block_count(1)
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    writer.add_string("general.license", "apache-2.0")
    writer.add_string("tokenizer.chat_template", "{{ messages }}")
    writer.add_tensor("token_embd.weight", np.arange(32 * 8, dtype=np.float32).reshape(32, 8))
    writer.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    data = buf_path.read_bytes()
    buf_path.unlink()
    return data


def tiny_hf_files() -> dict[str, bytes]:
    """config.json, tokenizer files and a model.safetensors of a 2-tensor "llama"."""
    from safetensors.numpy import save

    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8,
        "num_hidden_layers": 1, "max_position_embeddings": 128, "torch_dtype": "float32",
        "vocab_size": 16,
    }
    weights = {
        "model.embed_tokens.weight": np.zeros((16, 8), dtype=np.float32),
        "model.norm.weight": np.ones(8, dtype=np.float32),
    }
    tokenizer = {"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}
    return {
        "config.json": json.dumps(config).encode(),
        "tokenizer.json": json.dumps(tokenizer).encode(),
        "tokenizer_config.json": json.dumps({"chat_template": "{{ messages }}"}).encode(),
        "generation_config.json": b'{"eos_token_id": 0}',
        "model.safetensors": save(weights),
        "README.md": b"# tiny\n",
    }


def snapshot(root: Path) -> dict[str, str]:
    """Every file (and symlink target) under `root` with its sha256: compare to prove nothing changed."""
    state = {}
    if not root.exists():
        return state
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            state[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "corral-home"
    monkeypatch.setenv("CORRAL_HOME", str(root))
    monkeypatch.setenv("CORRAL_TEST_TMP", str(tmp_path))
    return root


@pytest.fixture(scope="session")
def gguf_files(tmp_path_factory) -> dict[str, bytes]:
    os.environ.setdefault("CORRAL_TEST_TMP", str(tmp_path_factory.mktemp("gguf")))
    return {q: tiny_gguf("tiny", q) for q in ("Q4_K_M", "Q8_0", "F16")}


@pytest.fixture
def hub(monkeypatch, gguf_files) -> FakeHub:
    """A running fake Hub with a GGUF repo (Q4_K_M, Q8_0, F16) and a safetensors repo; HF_ENDPOINT points at it."""
    import huggingface_hub.constants

    server = FakeHub().start()
    server.add_repo(GGUF_REPO, {
        "README.md": b"# tiny gguf\n",
        **{f"tiny-{q.lower()}.gguf": data for q, data in gguf_files.items()},
    })
    server.add_repo(HF_REPO, tiny_hf_files())
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", server.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield server
    server.stop()

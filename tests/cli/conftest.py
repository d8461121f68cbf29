"""Fixtures for `corral run` tests: a tiny Qwen2 GGUF, a store holding it under Modelfile names,
and the offline API on the same file for greedy references."""
from __future__ import annotations

from pathlib import Path

import pytest

from cli_harness import free_port

MODELFILE = '''FROM {gguf}
SYSTEM """You are a terse assistant."""
PARAMETER temperature 0
PARAMETER num_predict 8
MESSAGE user Who are you?
MESSAGE assistant A tiny model.
'''
PLAIN_MODELFILE = "FROM {gguf}\nPARAMETER temperature 0\nPARAMETER num_predict 8\n"


@pytest.fixture(scope="session")
def tiny_gguf(tiny_models) -> Path:
    return tiny_models("qwen2", "Q8_0")


@pytest.fixture(scope="session")
def cli_store(tmp_path_factory, tiny_gguf) -> Path:
    """A store with `mymodel` (SYSTEM, PARAMETERs, MESSAGE turns) and `plain` (greedy, 8 tokens)."""
    from corral import store

    home = tmp_path_factory.mktemp("cli-home")
    store.create("mymodel", MODELFILE.format(gguf=tiny_gguf), home=home)
    store.create("plain", PLAIN_MODELFILE.format(gguf=tiny_gguf), home=home)
    return home


@pytest.fixture(scope="session")
def reference_llm(tiny_gguf):
    from corral import LLM

    return LLM(str(tiny_gguf), max_model_len=4096, max_num_seqs=1)


@pytest.fixture
def closed_host() -> str:
    """A loopback address nothing listens on: `corral run` then runs the model in-process."""
    return f"127.0.0.1:{free_port()}"

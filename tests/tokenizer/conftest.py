"""Tokenizer folders trained on the spot, shared by the tokenizer tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.tokenizers import write_bpe_tokenizer, write_spm_tokenizer


@pytest.fixture(scope="session")
def llama3_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("llama3-tokenizer")
    write_bpe_tokenizer(path, vocab_size=400, style="llama3")
    return path


@pytest.fixture(scope="session")
def qwen2_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("qwen2-tokenizer")
    write_bpe_tokenizer(path, vocab_size=400, style="qwen2")
    return path


@pytest.fixture(scope="session")
def spm_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spm-tokenizer")
    write_spm_tokenizer(path)
    return path


@pytest.fixture(scope="session")
def style_dirs(llama3_dir, qwen2_dir, spm_dir) -> dict[str, Path]:
    return {"llama3": llama3_dir, "qwen2": qwen2_dir, "spm": spm_dir}

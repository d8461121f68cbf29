"""What a model family adds to the file formats, declared by the family itself.

The loaders read formats (GGUF metadata and tensors, config.json and safetensors); a family in
`corral/models/<family>.py` says what its files mean: which HF classes, `model_type`s and GGUF
architecture are its, its config keys and their defaults, its GGUF tensor names, how its stored
values differ between the formats (Gemma's norms), and what to write when exporting. The loaders
look a family up here by the names they find in a file; the families are listed in
`corral.models.registry.FAMILIES` and imported only when a file names one of them.

Every family, the Llama one too (`corral/models/llama_family.py`), is declared here; the default
methods below describe the Llama layout (`gguf_names.LAYER_NAMES`, `expected_weights.py`), which
the other families extend.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, TypeVar

from corral.errors import ModelFileError

from corral.loader.architectures import ArchSpec
from corral.loader.config import ModelConfig
from corral.loader.gguf_names import LAYER_NAMES

T = TypeVar("T")

MetadataKey = Callable[..., Any]  # key(name, default=...) -> the value of GGUF key "{arch}.{name}"


class Family:
    """Subclasses set `spec` and override what differs from a Llama-shaped model.

    Rules: every method is a pure function of its arguments; names are HF names as
    transformers writes them (the model's modules carry the same names); tensors a loader yields
    hold HF values, so the model never asks which format they came from.
    """

    spec: ArchSpec
    hf_architectures: tuple[str, ...] = ()  # further config.json "architectures" it runs
    model_types: tuple[str, ...] = ()  # further config.json "model_type"s it runs
    layer_names: dict[str, str] = LAYER_NAMES  # per-layer GGUF stem -> HF module path
    non_weight_tensors: frozenset[str] = frozenset()  # GGUF tensors read into the config instead
    reads_gguf = True  # False: HF folders only; a GGUF file of it stays unsupported

    def hf_text_config(self, d: dict[str, Any]) -> dict[str, Any]:
        """The dict holding the text model's settings (a multimodal config nests them)."""
        return d

    def adjust_hf_config(self, cfg: ModelConfig, d: dict[str, Any]) -> ModelConfig:
        """The config after the family's own config.json keys are read (d: hf_text_config's)."""
        return cfg

    def adjust_gguf_config(self, cfg: ModelConfig, key: MetadataKey, gf) -> ModelConfig:
        """The config after the family's own GGUF metadata keys (and non-weight tensors of the
        GGUFFile `gf`) are read."""
        return cfg

    def expected_hf_names(self, cfg: ModelConfig) -> list[str]:
        from corral.loader.expected_weights import expected_hf_names

        return expected_hf_names(cfg, family=False)

    def hf_checkpoint_name(self, name: str) -> str | None:
        """A safetensors name -> the model's name for it; None for tensors the model does not use
        (a multimodal checkpoint's vision tower)."""
        return name

    def gguf_tensor_to_hf(self, hf_name: str, tensor):
        """A dense tensor read from GGUF (torch, float32) -> the value an HF checkpoint holds."""
        return tensor

    def hf_tensor_to_gguf(self, hf_name: str, array):
        """An HF tensor (numpy float32) -> the value llama.cpp's converter writes."""
        return array

    def write_gguf_metadata(self, writer, cfg: ModelConfig) -> None:
        """Write the family's own `{arch}.*` keys and non-weight tensors (the common keys are
        written by the exporter; rope scaling too unless `writes_rope_scaling`)."""

    writes_rope_scaling = False  # write_gguf_metadata writes the rope scaling itself
    rope_types: tuple[str, ...] = ()  # rope scaling types the family reads itself (adjust_*_config)

    def claims_gguf(self, get: Callable[[str], Any]) -> bool:
        """Whether a GGUF file of this family's `spec.gguf_arch` is this family's (`get(key)`: the
        file's metadata value or None). Families sharing an architecture name tell their files
        apart here (Mixtral is llama.cpp's "llama" with experts)."""
        return True


def _families() -> list[Family]:
    from corral.models.registry import FAMILIES

    found = []
    for target in FAMILIES:
        module_name, _, attr = target.partition(":")
        found.append(getattr(importlib.import_module(module_name), attr))
    return found


def family_for_gguf(arch: str, get: Callable[[str], Any] = lambda key: None) -> Family | None:
    """The family of a GGUF file of `general.architecture` `arch`, `get(key)` its metadata."""
    return next((f for f in _families() if f.reads_gguf and f.spec.gguf_arch == arch and f.claims_gguf(get)), None)


def family_for_hf(d: dict[str, Any]) -> Family | None:
    """The family of a config.json dict, by "architectures" first, then "model_type"."""
    archs = d.get("architectures")
    names = [a for a in archs if isinstance(a, str)] if isinstance(archs, list) else []
    for f in _families():
        if any(n == f.spec.hf_architecture or n in f.hf_architectures for n in names):
            return f
    model_type = d.get("model_type")
    if not isinstance(model_type, str):
        return None
    return next((f for f in _families() if model_type == f.spec.model_type or model_type in f.model_types), None)


def family_for_config(cfg: ModelConfig) -> Family | None:
    return next((f for f in _families() if cfg.model_type == f.spec.model_type), None)


def family_names() -> list[str]:
    """HF class names the families run, for error messages."""
    return sorted({n for f in _families() for n in (f.spec.hf_architecture, *f.hf_architectures)})


def gguf_family_names() -> list[str]:
    return sorted({f.spec.gguf_arch for f in _families() if f.reads_gguf})


def read_family_settings(path, read: Callable[..., T], *args: Any) -> T:
    """`read(*args)` (a family's hf_text_config or adjust_* hook), with a malformed or missing value
    of a family's own keys raised as ModelFileError, as the common keys' checks raise them."""
    try:
        return read(*args)
    except (TypeError, ValueError, KeyError, IndexError, OverflowError, AttributeError) as e:
        raise ModelFileError(path, f"a setting of this model family is missing or malformed ({type(e).__name__}: "
                                   f"{str(e)[:200]}); re-convert or re-download the model") from None

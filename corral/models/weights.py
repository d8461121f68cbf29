"""Hand each (Hugging Face name, tensor) pair to the module that owns it."""
from __future__ import annotations

from typing import Iterable

from torch import nn

from corral.errors import ModelFileError

# Buffers some checkpoints carry that the model recomputes.
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def expected_names(model: nn.Module) -> set[str]:
    """Every weight name the model needs, derived from modules with `load_param`."""
    names = set()
    for prefix, module in model.named_modules():
        if not hasattr(module, "load_param"):
            continue
        names.add(f"{prefix}.weight")
        if getattr(module, "has_bias", False):
            names.add(f"{prefix}.bias")
    return names


def load_named_weights(model: nn.Module, weights: Iterable, keep_quantized: bool, tied: dict[str, str]) -> None:
    """Load every weight; names in `tied` (target -> source) reuse the source when absent.

    Raises ModelFileError naming the missing weights when the file lacks some.
    """
    needed = expected_names(model)
    loaded: dict[str, object] = {}
    for name, value in weights:
        if name.endswith(IGNORED_SUFFIXES) or name not in needed:
            continue
        _load(model, name, value, keep_quantized)
        # Keep a tied source (the embedding) so its target can share it; others only as a mark.
        loaded[name] = value if name in tied.values() else True
    for target, source in tied.items():
        if target not in loaded and source in loaded:
            _load(model, target, loaded[source], keep_quantized)
            loaded[target] = True
    missing = sorted(needed - loaded.keys())
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ModelFileError(getattr(model, "source_path", "model"), f"missing weights: {shown}")



def _load(model: nn.Module, name: str, value, keep_quantized: bool) -> None:
    """One weight into the module that owns it; a tensor that does not fit is the file's fault."""
    module_name, _, param = name.rpartition(".")
    try:
        model.get_submodule(module_name).load_param(param, value, keep_quantized=keep_quantized)
    except (ValueError, RuntimeError) as e:  # a shape the module cannot take (reshape, size checks)
        raise ModelFileError(getattr(model, "source_path", "model"), f"weight {name}: {str(e)[:300]}") from None

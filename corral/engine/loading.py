"""Model name or path -> a ready model, its tokenizer and config."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from corral import kernels
from corral.engine.engine_args import EngineArgs
from corral.engine.heap import release_free_memory
from corral.errors import ModelFileError, ValidationError
from corral.loader.config import ModelConfig
from corral.loader.quantized import QuantizedWeight


@dataclass
class LoadedModel:
    name: str
    path: Path
    model: torch.nn.Module
    tokenizer: object
    config: ModelConfig
    max_model_len: int
    weights_bytes: int
    make_detokenizer: Callable[[bool], object]
    load_seconds: float
    format: str  # "gguf" or "hf"
    device: torch.device = torch.device("cpu")  # where the weights are
    dtype: torch.dtype = torch.float32  # the compute dtype of weights and activations


def resolve_path(model: str) -> Path:
    """A filesystem path as is; otherwise a name from the local store."""
    p = Path(model).expanduser()
    if p.exists():
        return p
    from corral.store import resolve

    return Path(resolve(model).path)


def load_model(args: EngineArgs, on_progress: Callable[[int, int], None] | None = None) -> LoadedModel:
    """Load the model `args` names; `on_progress(done, total)` is told of each weight tensor loaded."""
    from corral.loader import load_model_source
    from corral.engine.device import move_model, resolve_device, resolve_dtype
    from corral.models.registry import model_class
    from corral.store.default_model import prefers_float_activations
    from corral.tokenizer import IncrementalDetokenizer, Tokenizer

    start = time.monotonic()
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    path = resolve_path(args.model)
    # The quantized kernels are CPU float32 code; elsewhere GGUF blocks are dequantized at load.
    # Unset, the model chooses: the bundled SmolLM2 keeps float32 activations (store.default_model),
    # through the kernels where they are fast, else with dense weights.
    float_activations = args.keep_quantized is None and prefers_float_activations(path)
    wants_quantized = args.keep_quantized if args.keep_quantized is not None else (
        not float_activations or kernels.float_activations_fast())
    keep_quantized = wants_quantized and device.type == "cpu" and dtype == torch.float32
    source = load_model_source(path)
    cfg = source.config
    tokenizer = Tokenizer.from_gguf(source.gguf) if source.format == "gguf" else Tokenizer.from_hf_dir(source.path)
    if tokenizer.vocab_size > cfg.vocab_size:
        # A token id past the embedding would fail (or read past the weights) in the middle of a batch.
        raise ModelFileError(path, f"the tokenizer has {tokenizer.vocab_size} tokens but the model only "
                                   f"{cfg.vocab_size} embeddings; the tokenizer does not belong to this model")
    max_len = args.max_model_len or min(cfg.max_position_embeddings, EngineArgs.DEFAULT_MAX_LEN_CAP)
    if max_len > cfg.max_position_embeddings:
        raise ValidationError(
            "max_model_len", f"{max_len} exceeds the model's context of {cfg.max_position_embeddings} tokens"
        )
    model = model_class(cfg.architecture, str(path))(cfg, max_positions=max_len)
    model.source_path = str(path)
    weights = source.iter_weights(keep_quantized=keep_quantized)
    if keep_quantized and float_activations:
        weights = with_float_activations(weights)
    if on_progress is not None:
        weights = counted(weights, source.num_tensors(), on_progress)
    if device.type != "cpu" or dtype != torch.float32:
        weights = converted_weights(model, weights, device, dtype)
    model.load_weights(weights, keep_quantized=keep_quantized)
    model.eval()
    if keep_quantized:
        populate_file_weights(model)
    if device.type != "cpu" or dtype != torch.float32:
        move_model(model, device, dtype)  # what was made at construction: norms, rotary tables
    model_format = source.format
    del source  # the GGUF index and metadata; the weights keep only their views of the file
    release_free_memory()
    return LoadedModel(
        name=args.model,
        path=path,
        model=model,
        tokenizer=tokenizer,
        config=cfg,
        max_model_len=max_len,
        weights_bytes=weights_bytes(model),
        make_detokenizer=lambda skip: IncrementalDetokenizer(tokenizer, skip_special_tokens=skip),
        load_seconds=time.monotonic() - start,
        format=model_format,
        device=device,
        dtype=dtype,
    )


def with_float_activations(weights):
    """The weights, each quantized one marked for kernels that keep activations in float32."""
    for name, value in weights:
        yield name, replace(value, float_activations=True) if isinstance(value, QuantizedWeight) else value


def counted(weights, total: int, on_progress: Callable[[int, int], None]):
    """`weights` unchanged, calling `on_progress(done, total)` before the first and after each."""
    on_progress(0, total)
    for done, item in enumerate(weights, 1):
        yield item
        on_progress(done, total)


def converted_weights(model: torch.nn.Module, weights, device: torch.device, dtype: torch.dtype):
    """The checkpoint's weights one by one on `device`, floating ones in `dtype` (GGUF blocks
    dequantized first), with the model's layers set to keep that dtype: no copy of the whole
    model is made on the host."""
    from corral.loader.quantized import QuantizedWeight

    for module in model.modules():
        if isinstance(getattr(module, "dtype", None), torch.dtype):
            module.dtype = dtype
    for name, value in weights:
        if isinstance(value, QuantizedWeight):
            value = value.dequantize()
        yield name, value.to(device=device, dtype=dtype if value.is_floating_point() else value.dtype)


def populate_file_weights(model: torch.nn.Module) -> int:
    """Fault in now the file pages of every quantized weight the kernels read straight from the
    GGUF mapping (as llama.cpp maps its file with MAP_POPULATE), so that decode steps take no page
    faults; skipped where those weights are more than half the memory the OS could still give (the
    kernel may then keep only the pages in use). Returns the bytes advised."""
    from corral.engine.kv_cache import available_memory_bytes
    from corral.loader.gguf_file import is_file_view, populate_pages

    views = [p.data for p in packed_weights(model) if is_file_view(p.data)]
    if sum(v.nbytes for v in views) > available_memory_bytes() // 2:
        return 0
    return sum(populate_pages(v) for v in views)


def packed_weights(model: torch.nn.Module) -> list:
    """Every weight the model keeps in its blocks for the CPU kernels (kernels.PackedWeight), once
    each."""
    seen: dict[int, object] = {}
    for m in model.modules():
        if (p := getattr(m, "packed", None)) is not None:
            seen.setdefault(id(p), p)
    return list(seen.values())


def weights_bytes(model: torch.nn.Module) -> int:
    """Bytes of every weight the model holds (dense tensors and packed quantized blocks)."""
    total = 0
    seen: set[int] = set()
    for module in model.modules():
        for attr in ("weight", "bias", "packed", "quantized"):
            value = getattr(module, attr, None)
            if value is None or id(value) in seen:
                continue
            seen.add(id(value))
            if isinstance(value, torch.Tensor):
                total += value.numel() * value.element_size()
            elif hasattr(value, "nbytes"):
                total += int(value.nbytes)
            elif hasattr(value, "data") and hasattr(value.data, "nbytes"):
                total += int(value.data.nbytes)
    return total

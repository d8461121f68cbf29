"""Where the engine runs and in which float type: `--device` and `--dtype` resolved once.

    device  "auto" (CUDA when torch sees a GPU, else the CPU), "cpu", "cuda", "cuda:N"
    dtype   "auto" (float32 on the CPU, where the C kernels compute in float32; bfloat16 on a
            GPU that has it, else float16), "bfloat16", "float16", "float32"
"""
from __future__ import annotations

import torch

from corral.errors import ValidationError

DTYPES = ("auto", "bfloat16", "float16", "float32")


def resolve_device(name: str) -> torch.device:
    """The torch device for EngineArgs.device. Raises ValidationError for a name torch does not
    know or a CUDA device this machine does not have."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValidationError("device", f"{name!r} is not a device; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValidationError("device", "no CUDA device is available to torch; use --device cpu (or auto)")
    if device.type not in ("cpu", "cuda"):
        raise ValidationError("device", f"{device.type} is not supported; use auto, cpu or cuda[:N]")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The compute dtype of weights and activations for EngineArgs.dtype on `device`."""
    if name not in DTYPES:
        raise ValidationError("dtype", f"must be one of {', '.join(DTYPES)}, got {name!r}")
    if name != "auto":
        return getattr(torch, name)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def move_model(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """The model's weights and buffers moved to `device`, its floating-point ones in `dtype`
    (integer tensors such as row orders keep theirs), in place. A tensor two modules share (a
    tied embedding and output head) stays one tensor. Each is converted on its own, so no second
    copy of the whole model is made."""
    moved: dict[int, torch.Tensor] = {}
    for module in model.modules():
        for name, tensor in list(module._buffers.items()):
            if tensor is None:
                continue
            if id(tensor) not in moved:
                target = dtype if tensor.is_floating_point() else tensor.dtype
                moved[id(tensor)] = tensor.to(device=device, dtype=target)
            module._buffers[name] = moved[id(tensor)]
            if name in module.__dict__:  # LeanModule's mirror of the buffer
                module.__dict__[name] = moved[id(tensor)]
    return model


def kv_cache_budget_on_device(device: torch.device, utilization: float) -> int:
    """Bytes the KV cache may take on a CUDA device after the weights are loaded: what keeps the
    device's use (by this and any other process) under `utilization` of its memory, as vLLM's
    --gpu-memory-utilization, less a margin for the activations of a step."""
    free, total = torch.cuda.mem_get_info(device)
    used = total - free
    activation_margin = min(2 << 30, total // 20)
    return max(0, int(total * utilization) - used - activation_margin)

"""Attention backends by name, imported only when chosen.

    cpu     corral's C kernels for decode (and the prompts they suit), torch's SDPA for the rest;
            CPU only, needs the built extension
    torch   plain torch over the paged cache: gathered K/V for decode, SDPA per sequence for
            prefill; runs on any device, the reference the others are checked against
    triton  Triton kernels over the paged cache (layers/attention/triton_kernels.py); CUDA, or
            the CPU under TRITON_INTERPRET=1 (tests)
    auto    cpu on the CPU when the kernels are built, triton on CUDA when Triton imports,
            otherwise torch
"""
from __future__ import annotations

import importlib.util
import os
from typing import Callable

import torch

from corral.errors import ValidationError
from corral.layers.attention.backend import AttentionBackend

BACKEND_NAMES = ("auto", "cpu", "torch", "triton")


def _cpu() -> AttentionBackend:
    from corral.layers.attention.torch_paged import TorchPagedAttention

    return TorchPagedAttention(use_kernel=True)


def _torch() -> AttentionBackend:
    from corral.layers.attention.torch_paged import TorchPagedAttention

    return TorchPagedAttention(use_kernel=False)


def _triton() -> AttentionBackend:
    from corral.layers.attention.triton_backend import TritonPagedAttention

    return TritonPagedAttention()


_FACTORIES: dict[str, Callable[[], AttentionBackend]] = {"cpu": _cpu, "torch": _torch, "triton": _triton}


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def resolve_backend_name(name: str, device: torch.device | str) -> str:
    """The concrete backend `name` means on `device`. Raises ValidationError for an unknown name
    or one that cannot run there, with what to pick instead."""
    device = torch.device(device)
    if name not in BACKEND_NAMES:
        raise ValidationError("attention_backend", f"must be one of {', '.join(BACKEND_NAMES)}, got {name!r}")
    if name == "auto":
        from corral.kernels import attention as kernel

        if device.type == "cpu":
            return "cpu" if kernel.is_available() else "torch"
        return "triton" if device.type == "cuda" and triton_available() else "torch"
    if name == "cpu" and device.type != "cpu":
        raise ValidationError("attention_backend", f"the cpu backend runs on the CPU only, not {device}; "
                                                   "use auto, torch or triton")
    if name == "cpu":
        from corral.kernels import attention as kernel

        if not kernel.is_available():
            raise ValidationError("attention_backend", "corral's C kernels are not built; rebuild with "
                                                       "scripts/setup-env or use the torch backend")
    if name == "triton":
        if not triton_available():
            raise ValidationError("attention_backend", "Triton is not installed (pip install triton); "
                                                       "use auto or torch")
        if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValidationError("attention_backend", f"Triton kernels need a CUDA device, not {device} "
                                                       "(or TRITON_INTERPRET=1 to interpret them); use auto or torch")
    return name


def get_backend(name: str = "auto", device: torch.device | str = "cpu") -> AttentionBackend:
    """A fresh backend for `name` (see resolve_backend_name) on `device`."""
    return _FACTORIES[resolve_backend_name(name, device)]()

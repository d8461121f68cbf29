"""nn.Module with the per-call costs that matter at one token taken out.

A decode step of a 24-layer model reads a few hundred submodules and calls about two hundred
modules. nn.Module finds a submodule through its `__getattr__` fallback (~0.8 us) and runs a call
through its hook machinery (~1 us); both run again for every token, with caches cold from the
weight stream. LeanModule keeps each submodule in the instance dict as well (a plain attribute
read) and calls `forward` directly. Registration is unchanged (named_modules, state_dict and
get_submodule see the same tree); what is given up is module hooks, which corral does not use.

Every tensor assigned to a LeanModule attribute (weights, biases, row orders) is registered as a
buffer and mirrored in the instance dict the same way, so `model.to(device, dtype)` moves the
whole model while a read stays a plain attribute lookup.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class LeanModule(nn.Module):
    def __setattr__(self, name: str, value: Any) -> None:
        buffers = self.__dict__.get("_buffers")
        if (isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter)
                and buffers is not None and name not in buffers):
            self.__dict__.pop(name, None)  # a plain attribute until now (e.g. `self.weight = None`)
            self.register_buffer(name, value)
        else:
            super().__setattr__(name, value)
        for table in ("_modules", "_buffers"):
            entries = self.__dict__.get(table)
            if entries is not None and name in entries:
                self.__dict__[name] = entries[name]  # read without __getattr__

    def __delattr__(self, name: str) -> None:
        if name in self._modules or name in self._buffers:
            self.__dict__.pop(name, None)
        super().__delattr__(name)

    def _apply(self, fn, recurse: bool = True):
        result = super()._apply(fn, recurse)
        self.__dict__.update(self._buffers)  # the converted tensors (.to(), .cuda(), .half())
        return result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

"""nn.Module with the per-call costs that matter at one token taken out.

A decode step of a 24-layer model reads a few hundred submodules and calls about two hundred
modules. nn.Module finds a submodule through its `__getattr__` fallback (~0.8 us) and runs a call
through its hook machinery (~1 us); both run again for every token, with caches cold from the
weight stream. LeanModule keeps each submodule in the instance dict as well (a plain attribute
read) and calls `forward` directly. Registration is unchanged (named_modules, state_dict and
get_submodule see the same tree); what is given up is module hooks, which corral does not use.
"""
from __future__ import annotations

from typing import Any

from torch import nn


class LeanModule(nn.Module):
    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        modules = self.__dict__.get("_modules")
        if modules is not None and name in modules:
            self.__dict__[name] = modules[name]  # the registered module (or None), read without __getattr__

    def __delattr__(self, name: str) -> None:
        if name in self._modules:
            self.__dict__.pop(name, None)
        super().__delattr__(name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

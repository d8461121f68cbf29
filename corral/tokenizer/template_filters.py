"""Chat-template filters, guarded: arguments weighed, a size check before the filters that can build
more than they are given (center, indent, batch, slice, format, join, replace, wordwrap, sum), and
every result checked. `template_sandbox.BoundedSandbox.guard_filters` wraps the environment's filters.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any

from corral.tokenizer.template_budget import TemplateLimitError, charge, charge_size, check_size, weight
from corral.tokenizer.template_sizes import (
    MAX_ITEMS, BudgetedIterable, check_result, percent_format_size, replaced_size,
)

def guarded_filter(name: str, func: Any) -> Any:
    """`func` with its arguments weighed, a size check before the call where the filter can build
    more than it is given, and its result checked."""
    pre = _FILTER_CHECKS.get(name)
    signature = inspect.signature(func) if pre else None
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        charge()
        for value in (*args[skip:], *kwargs.values()):
            weight(value)
        if pre is not None:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            pre(bound.arguments)  # may replace a one-pass iterable by a list of its items
            args, kwargs = bound.args, bound.kwargs
        result = func(*args, **kwargs)
        check_result(result)
        return result

    return guarded


def _check_center(a: dict) -> None:
    if isinstance(a["width"], int):
        check_size(a["width"], "a string with center")


def _check_indent(a: dict) -> None:
    width = a["width"]
    per_line = width if isinstance(width, int) else len(str(width))
    check_size(len(str(a["s"])) + (str(a["s"]).count("\n") + 2) * max(per_line, 0), "a string with indent")


def _check_count(key: str):
    def check(a: dict) -> None:
        if isinstance(a[key], int) and a[key] > MAX_ITEMS:
            raise TemplateLimitError(f"the chat template asked for {a[key]} groups (at most {MAX_ITEMS})")
    return check


def _check_format(a: dict) -> None:
    check_size(percent_format_size(str(a["value"]), a["kwargs"] or a["args"]), "a string with format")


def _check_join(a: dict) -> None:
    value = a["value"]
    if not hasattr(value, "__len__"):
        value = a["value"] = list(BudgetedIterable(value))  # join needs them all anyway
    check_size(weight(value) + len(str(a["d"])) * len(value), "a string with join")


def _check_replace(a: dict) -> None:
    check_size(replaced_size(str(a["s"]), str(a["old"]), str(a["new"])), "a string with replace")


def _check_wordwrap(a: dict) -> None:
    text, width = str(a["s"]), a["width"]
    lines = len(text) // max(width, 1) + 1 if isinstance(width, int) else len(text) + 1
    check_size(len(text) + lines * len(str(a["wrapstring"] or "\n")), "a string with wordwrap")


def _check_sum(a: dict) -> None:
    if not isinstance(a["start"], (int, float)):  # summing lists or strings copies quadratically
        items = a["iterable"] = list(BudgetedIterable(a["iterable"]))
        charge_size(len(items) * weight(items) // 2)


_FILTER_CHECKS = {
    "center": _check_center,
    "indent": _check_indent,
    "batch": _check_count("linecount"),
    "slice": _check_count("slices"),
    "format": _check_format,
    "join": _check_join,
    "replace": _check_replace,
    "wordwrap": _check_wordwrap,
    "sum": _check_sum,
}

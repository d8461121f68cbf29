"""Size checks for the operations of a chat template, made before the operation runs.

`*`, `**`, `+`, `%`, `str.format` and the string methods that pad or repeat can build far more than
they are given; each check here computes an upper bound of what the operation would build and
raises TemplateLimitError (template_budget.check_size) when it is over the limits, charging the
render for it otherwise. `template_sandbox` calls them from its operator and call hooks,
`template_filters` from its filter guards.
"""
from __future__ import annotations

import re
import string
from typing import Any

from corral.tokenizer.template_budget import MAX_CHARS, TemplateLimitError, charge, check_size, weight

MAX_INT_BITS = 1 << 16  # about 20,000 digits: far past any count or id a template needs
MAX_ITEMS = 100_000  # a batch or slice count (Jinja's own cap on range())
MAX_FORMAT_ARG = 4096  # a strftime format or a tojson indent

# printf-style conversions: %(key)-08.3f; width or precision "*" is taken from the arguments
_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?([a-zA-Z%])")
_SPEC_NUMBERS = re.compile(r"\d+")


class BudgetedIterable:
    """An iterable whose iteration charges one step per item; sized when the original is."""

    def __init__(self, iterable: Any):
        self._iterable = iterable

    def __iter__(self):
        for item in self._iterable:
            charge()
            yield item

    def __len__(self) -> int:
        return len(self._iterable)  # TypeError for an unsized one, which LoopContext expects


# -- operators --------------------------------------------------------------------------------

def check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                per_copy = len(seq) if isinstance(seq, str) else weight(seq)
                check_size(per_copy * max(n, 0), "a repeated sequence")
                return
        if _both_ints(left, right):
            _check_int_bits(abs(left).bit_length() + abs(right).bit_length())
    elif operator == "**":
        if _both_ints(left, right) and right > 0 and abs(left) > 1:
            _check_int_bits(right * abs(left).bit_length())
    elif operator == "+":
        if isinstance(left, str) and isinstance(right, str):
            check_size(len(left) + len(right), "a string with +")
        elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
            check_size(weight(left) + weight(right), "a list with +")
    elif operator == "%" and isinstance(left, str):
        check_size(percent_format_size(left, right), "a %-formatted string")


def _both_ints(left: Any, right: Any) -> bool:
    return isinstance(left, int) and isinstance(right, int)


def _check_int_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise TemplateLimitError(f"the chat template computed an integer of more than {MAX_INT_BITS} bits")


def percent_format_size(fmt: str, args: Any) -> int:
    """An upper bound of len(fmt % args), from the widths and precisions in `fmt`."""
    conversions = _PERCENT.findall(fmt)
    padding = 0
    for width, precision, _ in conversions:
        if width == "*" or precision == "*":
            raise TemplateLimitError("the chat template used a '*' width in a % format, which corral does not allow")
        padding += int(width or 0) + int(precision or 0)
        if padding > MAX_CHARS:
            break
    return len(fmt) + padding + len(conversions) * weight(args)


def check_str_format(fmt: str, args: tuple, kwargs: dict) -> None:
    fields, padding = 0, 0
    try:
        for _, field, spec, _ in string.Formatter().parse(fmt):
            if field is None:
                continue
            if spec and "{" in spec:
                raise TemplateLimitError("the chat template nested a field in a format spec, which corral does not allow")
            fields += 1
            padding += sum(int(n) for n in _SPEC_NUMBERS.findall(spec or "")[:2])
            if padding > MAX_CHARS:
                break
    except ValueError:
        return  # str.format raises the same error itself
    check_size(len(fmt) + padding + fields * (weight(args) + weight(kwargs)), "a formatted string")


# -- method calls and results -----------------------------------------------------------------

def check_method_call(obj: Any, args: tuple, kwargs: dict) -> tuple:
    """Size checks for the string methods that can build far more than they are given; returns
    `args`, with a one-pass iterable given to join() replaced by a list of its items."""
    owner = getattr(obj, "__self__", None)
    if not isinstance(owner, str):
        return args
    name = getattr(obj, "__name__", "")
    if name in ("ljust", "rjust", "center", "zfill"):
        width = args[0] if args else kwargs.get("width", 0)
        if isinstance(width, int):
            check_size(max(width, len(owner)), f"a string with {name}()")
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(size, int):
            check_size(len(owner) + owner.count("\t") * max(size, 0), "a string with expandtabs()")
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        check_size(replaced_size(owner, args[0], args[1]), "a string with replace()")
    elif name == "join" and args:
        items = args[0] if hasattr(args[0], "__len__") else list(BudgetedIterable(args[0]))
        check_size(weight(items) + len(owner) * len(items), "a string with join()")
        args = (items, *args[1:])
    elif name in ("translate", "maketrans"):
        raise TemplateLimitError(f"str.{name}() is not available in chat templates")
    return args


def replaced_size(text: str, old: str, new: str) -> int:
    hits = len(text) + 1 if old == "" else text.count(old)
    return len(text) + hits * len(new)


def check_result(result: Any) -> None:
    if isinstance(result, str):
        check_size(len(result), "a string")
    elif isinstance(result, (list, tuple, dict)):
        weight(result)

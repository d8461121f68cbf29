"""A Jinja2 sandbox whose renders are bounded in work and size (see template_budget).

Jinja2's immutable sandbox already stops templates from reaching Python internals or changing
their inputs; it does not stop `{{ 'x' * 10**10 }}`, a doubling `~` in a loop, nested loops of a
hundred thousand each, or `'%9999999999s' % 1`. This environment adds:

- every loop iteration, call, attribute/item lookup and `{{ }}` output charges the render's budget;
  literal template text charges it too (loop bodies are rewritten to do so), by its length;
- `*`, `**`, `+`, `%`, `~`, `str.format`, string methods that pad or repeat, and filters that do
  the same refuse, before computing, a result over MAX_CHARS characters (or an int of more than
  MAX_INT_BITS bits);
- every argument of a call or filter must weigh at most MAX_CHARS (template_budget.weight).

Exceeding a limit raises TemplateLimitError, which the caller turns into a ChatTemplateError.
"""
from __future__ import annotations

import functools
import inspect
import re
import string
from typing import Any

from jinja2 import nodes, pass_context
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range
from jinja2.visitor import NodeTransformer

from corral.tokenizer.template_budget import (
    MAX_CHARS, TemplateLimitError, charge, charge_size, check_size, emit, weight,
)

MAX_INT_BITS = 1 << 16  # about 20,000 digits: far past any count or id a template needs
MAX_ITEMS = 100_000  # a batch or slice count (Jinja's own cap on range())
MAX_FORMAT_ARG = 4096  # a strftime format or a tojson indent

# printf-style conversions: %(key)-08.3f; width or precision "*" is taken from the arguments
_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?([a-zA-Z%])")
_SPEC_NUMBERS = re.compile(r"\d+")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment with budgets; filters and globals are guarded at creation."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, finalize=_finalize, **kwargs)
        self.globals.pop("lipsum", None)  # lorem ipsum of any length: no chat template uses it
        self.globals["range"] = _range
        self.filters.update({ITER_FILTER: _budgeted_iter, CONCAT_FILTER: _concat, LITERAL_FILTER: _literal})

    def guard_filters(self) -> None:
        """Wrap every filter registered so far with the size checks; call once, after adding filters."""
        for name, func in list(self.filters.items()):
            if name not in (ITER_FILTER, CONCAT_FILTER, LITERAL_FILTER):
                self.filters[name] = _guarded_filter(name, func)

    def _parse(self, source, name, filename):
        return _Rewrite().visit(super()._parse(source, name, filename))

    def getattr(self, obj: Any, attribute: str) -> Any:
        charge()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        charge()
        return super().getitem(obj, argument)

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        if operator == "+" and type(left) is str and type(right) is str:  # most of a ChatML template
            check_size(len(left) + len(right), "a string with +")
            return left + right
        charge()
        _check_binop(operator, left, right)
        result = super().call_binop(context, operator, left, right)
        if isinstance(result, (str, list, tuple)):
            charge_size(len(result))
        return result

    def call(__self, __context, __obj, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's signature)
        charge()
        for value in (*args, *kwargs.values()):
            weight(value)
        args = _check_method_call(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        _check_result(result)
        return result

    def wrap_str_format(self, value: Any):
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        @functools.wraps(wrapped)
        def checked_format(*args: Any, **kwargs: Any) -> str:
            _check_str_format(fmt, args, kwargs)
            result = wrapped(*args, **kwargs)
            check_size(len(result), "a formatted string")
            return result

        return checked_format


# -- the rewritten template tree --------------------------------------------------------------

ITER_FILTER, CONCAT_FILTER, LITERAL_FILTER = "corral_budgeted_iter", "corral_concat", "corral_literal"


class _Rewrite(NodeTransformer):
    """Route loops, `~` and literal output through the budget. The filters are context filters,
    which Jinja never evaluates while compiling."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        node = self.generic_visit(node)
        node.iter = _filter(node.iter, ITER_FILTER)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)
        return _filter(nodes.List(node.nodes, lineno=node.lineno), CONCAT_FILTER)

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        node = self.generic_visit(node)
        node.nodes = [_filter(nodes.Const(child.data, lineno=child.lineno), LITERAL_FILTER)
                      if isinstance(child, nodes.TemplateData) else child for child in node.nodes]
        return node


def _filter(value: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(value, name, [], [], None, None, lineno=value.lineno)


class _BudgetedIterable:
    """An iterable whose iteration charges one step per item; sized when the original is."""

    def __init__(self, iterable: Any):
        self._iterable = iterable

    def __iter__(self):
        for item in self._iterable:
            charge()
            yield item

    def __len__(self) -> int:
        return len(self._iterable)  # TypeError for an unsized one, which LoopContext expects


@pass_context
def _budgeted_iter(context, iterable: Any) -> Any:
    return _BudgetedIterable(iterable)


@pass_context
def _concat(context, parts: list) -> str:
    check_size(sum(weight(p) for p in parts), "a string with ~")
    return "".join(map(str, parts))


@pass_context
def _literal(context, text: str) -> str:
    emit(len(text))
    return text


@pass_context  # so Jinja never finalizes constants while compiling, uncharged
def _finalize(context, value: Any) -> Any:
    """Every `{{ }}` output: its text must fit, and is charged by its length."""
    emit(weight(value))
    return value


def _range(*args: Any) -> range:
    rng = safe_range(*args)
    charge_size(len(rng))
    return rng


# -- operators --------------------------------------------------------------------------------

def _check_binop(operator: str, left: Any, right: Any) -> None:
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


def _check_str_format(fmt: str, args: tuple, kwargs: dict) -> None:
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

def _check_method_call(obj: Any, args: tuple, kwargs: dict) -> tuple:
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
        items = args[0] if hasattr(args[0], "__len__") else list(_BudgetedIterable(args[0]))
        check_size(weight(items) + len(owner) * len(items), "a string with join()")
        args = (items, *args[1:])
    elif name in ("translate", "maketrans"):
        raise TemplateLimitError(f"str.{name}() is not available in chat templates")
    return args


def replaced_size(text: str, old: str, new: str) -> int:
    hits = len(text) + 1 if old == "" else text.count(old)
    return len(text) + hits * len(new)


def _check_result(result: Any) -> None:
    if isinstance(result, str):
        check_size(len(result), "a string")
    elif isinstance(result, (list, tuple, dict)):
        weight(result)


# -- filters ----------------------------------------------------------------------------------

def _guarded_filter(name: str, func: Any) -> Any:
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
        _check_result(result)
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
        value = a["value"] = list(_BudgetedIterable(value))  # join needs them all anyway
    check_size(weight(value) + len(str(a["d"])) * len(value), "a string with join")


def _check_replace(a: dict) -> None:
    check_size(replaced_size(str(a["s"]), str(a["old"]), str(a["new"])), "a string with replace")


def _check_wordwrap(a: dict) -> None:
    text, width = str(a["s"]), a["width"]
    lines = len(text) // max(width, 1) + 1 if isinstance(width, int) else len(text) + 1
    check_size(len(text) + lines * len(str(a["wrapstring"] or "\n")), "a string with wordwrap")


def _check_sum(a: dict) -> None:
    if not isinstance(a["start"], (int, float)):  # summing lists or strings copies quadratically
        items = a["iterable"] = list(_BudgetedIterable(a["iterable"]))
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

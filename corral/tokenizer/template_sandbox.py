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

The checks themselves are in template_sizes (operators, methods) and template_filters.

Exceeding a limit raises TemplateLimitError, which the caller turns into a ChatTemplateError.
"""
from __future__ import annotations

import functools
from typing import Any

from jinja2 import nodes, pass_context
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range
from jinja2.visitor import NodeTransformer

from corral.tokenizer.template_budget import charge, charge_size, check_size, emit, weight
from corral.tokenizer.template_filters import guarded_filter
from corral.tokenizer.template_sizes import (
    BudgetedIterable, check_binop, check_method_call, check_result, check_str_format,
)


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
                self.filters[name] = guarded_filter(name, func)

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
        check_binop(operator, left, right)
        result = super().call_binop(context, operator, left, right)
        if isinstance(result, (str, list, tuple)):
            charge_size(len(result))
        return result

    def call(__self, __context, __obj, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's signature)
        charge()
        for value in (*args, *kwargs.values()):
            weight(value)
        args = check_method_call(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        check_result(result)
        return result

    def wrap_str_format(self, value: Any):
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        @functools.wraps(wrapped)
        def checked_format(*args: Any, **kwargs: Any) -> str:
            check_str_format(fmt, args, kwargs)
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


@pass_context
def _budgeted_iter(context, iterable: Any) -> Any:
    return BudgetedIterable(iterable)


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

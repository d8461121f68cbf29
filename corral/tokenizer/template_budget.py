"""What one chat-template render may spend: steps of work and characters of text.

A chat template is code from the model file, so a render is bounded like any untrusted program:
every loop iteration, call, attribute lookup and operator costs steps; every string or list built
costs steps by its size; no value, argument or output may weigh more than MAX_CHARS. The sandbox
(`template_sandbox`) charges the budget of the render in progress, found through a context
variable, so compiling (which also evaluates constant expressions) is bounded by sizes alone.

"Weight" is an upper bound of a value's length as text (what `str()` of it would produce, within a
small factor), counting shared references again each time: `[s] * 1000` weighs 1000 times `s`.
It is what stops a template from building a small structure whose text is enormous.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

MAX_CHARS = 16 << 20  # characters in any value, argument or the whole output (~4M tokens of text)
MAX_STEPS = 1_000_000  # a 20,000-message conversation in a ChatML template needs a fifth of this
CHARS_PER_STEP = 256  # building or writing 256 characters costs one step (a microsecond or so)
MAX_EMITTED = 4 * MAX_CHARS  # characters written in all, into the output or a {% set %} block or macro


class TemplateLimitError(Exception):
    """The template exceeded a limit; the message says which."""


class RenderBudget:
    """The steps left to one render, and the weights of the containers it has measured (by id,
    holding a reference so an id is never reused while its weight is remembered; templates in the
    immutable sandbox cannot change lists or dicts, so a weight stays true)."""

    def __init__(self, max_steps: int = MAX_STEPS):
        self.steps_left = max_steps
        self.emitted = 0
        self._weights: dict[int, tuple[Any, int]] = {}

    def charge(self, steps: int = 1) -> None:
        self.steps_left -= steps
        if self.steps_left < 0:
            raise TemplateLimitError(
                f"the chat template did more than {MAX_STEPS} steps of work (an endless or nested loop?)")

    def charge_size(self, chars: int) -> None:
        self.charge(1 + chars // CHARS_PER_STEP)

    def emit(self, chars: int) -> None:
        """Charge text written: captured text ({% set %} blocks, macros) is held until the block
        ends, so the total is capped too, not only the final output."""
        self.emitted += chars
        if self.emitted > MAX_EMITTED:
            raise TemplateLimitError(f"the chat template wrote more than {MAX_EMITTED} characters in all")
        self.charge_size(chars)


_CURRENT: ContextVar[RenderBudget | None] = ContextVar("corral_template_budget", default=None)


@contextmanager
def render_budget(max_steps: int = MAX_STEPS) -> Iterator[RenderBudget]:
    """Make a fresh budget the current one for the code inside the `with`."""
    budget = RenderBudget(max_steps)
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


def charge(steps: int = 1) -> None:
    """Charge the current render; nothing while compiling (there is no render then)."""
    budget = _CURRENT.get()
    if budget is not None:
        budget.charge(steps)


def charge_size(chars: int) -> None:
    budget = _CURRENT.get()
    if budget is not None:
        budget.charge_size(chars)


def emit(chars: int) -> None:
    budget = _CURRENT.get()
    if budget is not None:
        budget.emit(chars)


def check_size(chars: int, what: str) -> None:
    """Raise when `chars` is over MAX_CHARS; charge the current render for building that many."""
    if chars > MAX_CHARS:
        raise TemplateLimitError(f"the chat template built {what} of more than {MAX_CHARS} characters")
    charge_size(chars)


def weight(value: Any, limit: int = MAX_CHARS) -> int:
    """An upper bound of len(str(value)), up to `limit`: raises TemplateLimitError past it."""
    budget = _CURRENT.get()
    total = _weight(value, limit, budget, set())
    if total > limit:
        raise TemplateLimitError(f"the chat template built a value of more than {limit} characters as text")
    return total


def _weight(value: Any, limit: int, budget: RenderBudget | None, path: set[int]) -> int:
    if isinstance(value, str):
        return len(value)
    if value is None or isinstance(value, (bool, float)):
        return 24
    if isinstance(value, int):
        return value.bit_length() // 3 + 2  # digits, and a sign
    items = _children(value)
    if items is None:
        return 64  # an object the sandbox shows as a short repr (Undefined, a loop, a macro)
    if isinstance(items, (list, tuple)) and 4 * len(items) + 2 > limit:
        return 4 * len(items) + 2  # every item adds at least 4 (", " and quotes): too heavy already
    key = id(value)
    if budget is not None and key in budget._weights:
        return budget._weights[key][1]
    if key in path:  # a namespace that holds itself: repr() prints it as "..."
        return 8
    path.add(key)
    total = 2
    for item in items:
        kind = type(item)  # the common leaves inline: a long list is walked at C-loop speed
        if kind is str:
            total += 4 + len(item)
        elif kind is int or kind is float or kind is bool or item is None:
            total += 28 if kind is not int else 6 + item.bit_length() // 3
        else:
            total += 4 + _weight(item, limit, budget, path)
        if total > limit:
            break
    path.discard(key)
    if budget is not None and total <= limit and not _is_namespace(value):
        budget._weights[key] = (value, total)
        budget.charge(1)
    return total


def _children(value: Any):
    """The values repr() of a container shows, or None for a non-container."""
    if isinstance(value, (list, tuple, set, frozenset)):
        return value
    if isinstance(value, dict):
        return (x for kv in value.items() for x in kv)
    if _is_namespace(value):
        attrs = object.__getattribute__(value, "_Namespace__attrs")
        return (x for kv in attrs.items() for x in kv)
    return None


def _is_namespace(value: Any) -> bool:
    from jinja2.utils import Namespace

    return isinstance(value, Namespace)

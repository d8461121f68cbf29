"""Render a model's Jinja chat template exactly as transformers' `apply_chat_template` does.

Same environment (sandboxed, `trim_blocks`, `lstrip_blocks`, loop controls, `{% generation %}`
blocks), same helpers (`raise_exception`, `strftime_now`, a `tojson` that keeps non-ASCII text and
takes `indent`/`separators`/`sort_keys`), same variables (`messages`, `tools`, `documents`,
`add_generation_prompt`, the special tokens, extra keyword arguments). Templates are compiled once.

A template is untrusted code from the model file: it renders in a sandbox bounded in work and size
(`template_sandbox`), so a loop bomb or `{{ 'x' * 10**10 }}` is a ChatTemplateError in well under
a few seconds, with memory bounded by template_budget.MAX_CHARS.
"""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from corral.errors import ChatTemplateError
from corral.tokenizer.template_budget import MAX_CHARS, TemplateLimitError, render_budget
from corral.tokenizer.template_sizes import MAX_FORMAT_ARG

MAX_TEMPLATE_CHARS = 1 << 20  # real templates are a few kilobytes; compiling is not free
NO_TEMPLATE_MESSAGE = (
    "this model has no chat template, so it cannot take chat messages; use plain generate "
    "(the completions API, or `raw` prompts) with a prompt you format yourself, or give the model "
    "a chat template"
)


class TemplateRaised(Exception):
    """`raise_exception(message)` was called by the template."""


def render_chat_template(template: str | None, messages: list[Any], *, add_generation_prompt: bool = True,
                         tools: list[Any] | None = None, **variables: Any) -> str:
    """Render `template` for `messages`. `variables` are passed to the template as-is (special
    tokens such as `bos_token`, and extras like `enable_thinking`).

    Raises ChatTemplateError: no template (`template` is None), a template that does not
    compile, or one that fails on this conversation; when the template calls
    `raise_exception(msg)`, the error message is `msg`.
    """
    if template is None:
        raise ChatTemplateError(NO_TEMPLATE_MESSAGE)
    compiled = _compile(template)
    if not isinstance(messages, (list, tuple)):
        raise ChatTemplateError("messages must be a list of {'role': ..., 'content': ...} objects")
    try:
        plain_messages = [_plain(m) for m in messages]
        context = {k: _plain(v) for k, v in variables.items()}
        context.update(tools=_plain(tools), documents=_plain(context.pop("documents", None)))
    except RecursionError:
        raise ChatTemplateError("the messages are nested too deeply") from None
    for m in plain_messages:
        if not isinstance(m, dict):
            raise ChatTemplateError(f"each chat message must be an object with 'role' and 'content', got {m!r:.200}")
    try:
        return _render_bounded(compiled, messages=plain_messages, add_generation_prompt=add_generation_prompt,
                               **context)
    except TemplateRaised as e:
        raise ChatTemplateError(str(e)) from None
    except TemplateLimitError as e:
        raise ChatTemplateError(f"{e}; the model's chat template cannot render this conversation") from None
    except ChatTemplateError:
        raise
    except Exception as e:  # the template is untrusted code: any failure is the conversation's or the model's
        raise ChatTemplateError(f"the model's chat template failed on this conversation: {type(e).__name__}: "
                                f"{str(e)[:500]}") from None


def _render_bounded(compiled, **variables: Any) -> str:
    """Render in the budget of template_budget: output streamed and counted, never over MAX_CHARS."""
    parts: list[str] = []
    size = 0
    with render_budget():
        for chunk in compiled.generate(**variables):
            size += len(chunk)
            if size > MAX_CHARS:
                raise TemplateLimitError(f"the chat template wrote more than {MAX_CHARS} characters")
            parts.append(chunk)
    return "".join(parts)


@lru_cache(maxsize=64)
def _compile(template: str):
    import jinja2

    if len(template) > MAX_TEMPLATE_CHARS:
        raise ChatTemplateError(f"the model's chat template is longer than {MAX_TEMPLATE_CHARS} characters; "
                                "give the model a real chat template")
    try:
        return _environment().from_string(template)
    except jinja2.TemplateSyntaxError as e:
        raise ChatTemplateError(f"the model's chat template is not valid Jinja (line {e.lineno}): {e.message}") from None
    except (TemplateLimitError, RecursionError, MemoryError) as e:
        raise ChatTemplateError(f"the model's chat template cannot be compiled: {type(e).__name__}: {str(e)[:200]}") from None


@lru_cache(maxsize=1)
def _environment():
    import jinja2
    import jinja2.ext

    from corral.tokenizer.template_sandbox import BoundedSandbox

    class GenerationBlock(jinja2.ext.Extension):
        """`{% generation %}...{% endgeneration %}` marks assistant text for training masks;
        rendering just outputs the body."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

        def _render(self, caller):
            return caller()

    env = BoundedSandbox(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.guard_filters()
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


def _raise_exception(message):
    raise TemplateRaised(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    if isinstance(indent, int) and indent > MAX_FORMAT_ARG or isinstance(indent, str) and len(indent) > MAX_FORMAT_ARG:
        raise TemplateLimitError(f"tojson indent is over {MAX_FORMAT_ARG}")
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format):
    if len(str(format)) > MAX_FORMAT_ARG:
        raise TemplateLimitError(f"strftime_now format is longer than {MAX_FORMAT_ARG} characters")
    return datetime.now().strftime(format)


def _plain(value: Any) -> Any:
    """Rebuild `value` from plain JSON-like types (pydantic models and dataclasses become dicts),
    so the sandboxed template sees data, not objects with methods."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, str):  # subclasses (enums...) lose their extra methods
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):
        return _plain(value.model_dump())
    return f"<{type(value).__name__}>"

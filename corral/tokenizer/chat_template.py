"""Render a model's Jinja chat template exactly as transformers' `apply_chat_template` does.

Same environment (sandboxed, `trim_blocks`, `lstrip_blocks`, loop controls, `{% generation %}`
blocks), same helpers (`raise_exception`, `strftime_now`, a `tojson` that keeps non-ASCII text and
takes `indent`/`separators`/`sort_keys`), same variables (`messages`, `tools`, `documents`,
`add_generation_prompt`, the special tokens, extra keyword arguments). Templates are compiled once.
"""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from corral.errors import ChatTemplateError

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
    plain_messages = [_plain(m) for m in messages]
    for m in plain_messages:
        if not isinstance(m, dict):
            raise ChatTemplateError(f"each chat message must be an object with 'role' and 'content', got {m!r}")
    try:
        return compiled.render(
            messages=plain_messages,
            tools=_plain(tools),
            documents=_plain(variables.pop("documents", None)),
            add_generation_prompt=add_generation_prompt,
            **{k: _plain(v) for k, v in variables.items()},
        )
    except TemplateRaised as e:
        raise ChatTemplateError(str(e)) from None
    except ChatTemplateError:
        raise
    except Exception as e:  # the template is untrusted code: any failure is the conversation's or the model's
        raise ChatTemplateError(f"the model's chat template failed on this conversation: {type(e).__name__}: {e}") from None


@lru_cache(maxsize=64)
def _compile(template: str):
    import jinja2

    try:
        return _environment().from_string(template)
    except jinja2.TemplateSyntaxError as e:
        raise ChatTemplateError(f"the model's chat template is not valid Jinja (line {e.lineno}): {e.message}") from None


@lru_cache(maxsize=1)
def _environment():
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

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

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


def _raise_exception(message):
    raise TemplateRaised(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format):
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

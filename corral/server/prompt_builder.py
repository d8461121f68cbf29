"""Turn a GenerateRequest into what the engine takes: a prompt string or token ids.

- chat messages are rendered with the model's chat template and tokenized without adding
  special tokens (the template writes BOS itself when the model wants one);
- a raw prompt string goes to the engine as is (the engine adds BOS like `LLM.generate` does);
- a non-raw prompt (Ollama /api/generate) becomes a user message, after `history` (a Modelfile's
  MESSAGE turns) and with `system` first, when the model has a chat template;
- Ollama `context` (token ids of an earlier exchange) is put in front of the new tokens.

Rendering and tokenizing a long conversation is CPU work: the server calls `build_prompt` in a
worker thread, never on the event loop, with `max_tokens` so that a text far too long for the
context is refused (ContextLengthError) before all of it is tokenized.
"""
from __future__ import annotations

from typing import Any

from corral.engine.prompt_tokens import encode_prompt
from corral.server.generate_request import GenerateRequest

NO_LIMIT = 1 << 62


def with_system(messages: list[dict[str, Any]], system: str | None) -> list[dict[str, Any]]:
    """`messages` with a system message first when `system` is set and none is there yet."""
    if not system or any(m.get("role") == "system" for m in messages):
        return list(messages)
    return [{"role": "system", "content": system}, *messages]


def render_chat(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict] | None,
                max_tokens: int = NO_LIMIT, template_kwargs: dict[str, Any] | None = None) -> list[int]:
    """Token ids of `messages` rendered with the chat template, ready for the assistant's turn;
    `template_kwargs` are extra template variables (`enable_thinking`, ...). ContextLengthError
    when they are more than `max_tokens`."""
    kwargs = {**(template_kwargs or {}), **({"tools": tools} if tools else {})}
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, **kwargs)
    return encode_prompt(tokenizer, text, max_tokens, add_special_tokens=False, param="messages")


def build_prompt(req: GenerateRequest, tokenizer: Any, max_tokens: int | None = None) -> str | list[int]:
    """The engine prompt for `req` (raises ChatTemplateError when a template fails to render, and
    ContextLengthError when what it tokenizes has more than `max_tokens` tokens). A raw text
    prompt is returned as text: the engine tokenizes it, with the same limit."""
    limit = NO_LIMIT if max_tokens is None else max_tokens
    if req.messages is not None:
        return render_chat(tokenizer, with_system(req.messages, req.system), req.tools, limit,
                           req.chat_template_kwargs)
    prompt = req.prompt if req.prompt is not None else ""
    context = list(req.context or [])
    if isinstance(prompt, list):
        return context + prompt
    if not req.raw and tokenizer.chat_template:
        turns = [*req.history, {"role": "user", "content": prompt}]
        return context + render_chat(tokenizer, with_system(turns, req.system), None, limit - len(context),
                                     req.chat_template_kwargs)
    if context:
        return context + encode_prompt(tokenizer, prompt, limit - len(context), add_special_tokens=False)
    return prompt

"""Turn a GenerateRequest into what the engine takes: a prompt string or token ids.

- chat messages are rendered with the model's chat template and tokenized without adding
  special tokens (the template writes BOS itself when the model wants one);
- a raw prompt string goes to the engine as is (the engine adds BOS like `LLM.generate` does);
- a non-raw prompt (Ollama /api/generate) becomes a user message, after `history` (a Modelfile's
  MESSAGE turns) and with `system` first, when the model has a chat template;
- Ollama `context` (token ids of an earlier exchange) is put in front of the new tokens.
"""
from __future__ import annotations

from typing import Any

from corral.server.generate_request import GenerateRequest


def with_system(messages: list[dict[str, Any]], system: str | None) -> list[dict[str, Any]]:
    """`messages` with a system message first when `system` is set and none is there yet."""
    if not system or any(m.get("role") == "system" for m in messages):
        return list(messages)
    return [{"role": "system", "content": system}, *messages]


def render_chat(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict] | None,
                template_kwargs: dict[str, Any] | None = None) -> list[int]:
    """Token ids of `messages` rendered with the chat template, ready for the assistant's turn;
    `template_kwargs` are extra template variables (`enable_thinking`, ...)."""
    kwargs = {**(template_kwargs or {}), **({"tools": tools} if tools else {})}
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, **kwargs)
    return list(tokenizer.encode(text, add_special_tokens=False))


def build_prompt(req: GenerateRequest, tokenizer: Any) -> str | list[int]:
    """The engine prompt for `req` (raises ChatTemplateError when a template fails to render)."""
    if req.messages is not None:
        return render_chat(tokenizer, with_system(req.messages, req.system), req.tools, req.chat_template_kwargs)
    prompt = req.prompt if req.prompt is not None else ""
    if isinstance(prompt, list):
        return list(req.context or []) + prompt
    if not req.raw and tokenizer.chat_template:
        turns = [*req.history, {"role": "user", "content": prompt}]
        ids = render_chat(tokenizer, with_system(turns, req.system), None, req.chat_template_kwargs)
        return list(req.context or []) + ids
    if req.context:
        return list(req.context) + list(tokenizer.encode(prompt, add_special_tokens=False))
    return prompt

"""What a chat request needs from the model before it runs: history ready for the template, tools
checked and turned into a constraint, thinking switched as asked, and the plan for reading the
reply back (`ReplyPlan`). Raises ValidationError naming the field, before anything is queued."""
from __future__ import annotations

import dataclasses
from typing import Any

from corral.core.structured_outputs import StructuredOutputsParams
from corral.errors import ValidationError
from corral.server.chat_reply import ReplyPlan
from corral.server.generate_request import GenerateRequest
from corral.server.reasoning import prompt_closes_thinking, prompt_leaves_thinking_open, template_thinks
from corral.server.tool_calls import normalize_history, plan_tools

_RESERVED_TEMPLATE_VARIABLES = {"messages", "tools", "documents", "add_generation_prompt"}


def prepare_chat(req: GenerateRequest, tokenizer: Any) -> ReplyPlan:
    """Adjust `req` in place (history, template variables, output constraint); returns the plan."""
    kwargs = req.chat_template_kwargs
    if not isinstance(kwargs, dict):
        raise ValidationError("chat_template_kwargs", "must be an object of template variables")
    clash = _RESERVED_TEMPLATE_VARIABLES & set(kwargs)
    if clash:
        raise ValidationError("chat_template_kwargs", f"may not set {', '.join(sorted(clash))}")
    thinks = template_thinks(getattr(tokenizer, "chat_template", None))
    budget = req.thinking_token_budget
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        raise ValidationError("thinking_token_budget", f"must be a positive number of tokens, got {budget!r}")
    if budget is not None and not thinks:
        raise ValidationError("thinking_token_budget", "this model does not think (its template has no <think>)")
    if req.think is not None:
        if req.think and not thinks:
            raise ValidationError("think", "this model does not support thinking")
        kwargs.setdefault("enable_thinking", bool(req.think))
    if req.messages is not None:
        req.messages = normalize_history(req.messages)
    tools = plan_tools(req.tools, req.tool_choice, req.parallel_tool_calls, tokenizer, req.params)
    return ReplyPlan(tools=tools, thinks=thinks)


def with_prompt(plan: ReplyPlan, prompt_ids: list[int] | str, tokenizer: Any) -> ReplyPlan:
    """The plan, told whether the prompt leaves a `<think>` block open for the reply, or closed
    one for it (thinking switched off by the template)."""
    if not plan.thinks or isinstance(prompt_ids, str):
        return plan
    tail = tokenizer.decode(prompt_ids[-16:], skip_special_tokens=False)
    return ReplyPlan(plan.tools, plan.thinks, prompt_leaves_thinking_open(tail), prompt_closes_thinking(tail))


def constrain_after_thinking(req: GenerateRequest, plan: ReplyPlan) -> None:
    """Let a model that thinks do so before its output constraint applies (response_format,
    format, tools, ...): the thought is free (up to `thinking_token_budget` tokens, when set: the
    budget alone makes a constraint whose answer is free), the answer after `</think>` is
    constrained. Raw prompts and replies whose template switched thinking off are constrained
    from the start."""
    spec = req.params.structured_outputs
    budget = req.thinking_token_budget
    if req.raw or not plan.thinks or plan.thinking_off or (spec is None and budget is None):
        return
    if spec is None:
        spec = StructuredOutputsParams(lark=FREE_TEXT, param="thinking_token_budget")
    req.params.structured_outputs = dataclasses.replace(
        spec, thinking="open" if plan.in_thought else "optional", thinking_budget=budget)


FREE_TEXT = "start: TEXT\nTEXT: /(.|\\n)*/\n"

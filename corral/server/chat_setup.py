"""What a chat request needs from the model before it runs: history ready for the template, tools
checked and turned into a constraint, thinking switched as asked, and the plan for reading the
reply back (`ReplyPlan`). Raises ValidationError naming the field, before anything is queued."""
from __future__ import annotations

from typing import Any

from corral.errors import ValidationError
from corral.server.chat_reply import ReplyPlan
from corral.server.generate_request import GenerateRequest
from corral.server.reasoning import prompt_leaves_thinking_open, template_thinks
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
    if req.think is not None:
        if req.think and not thinks:
            raise ValidationError("think", "this model does not support thinking")
        kwargs.setdefault("enable_thinking", bool(req.think))
    if req.messages is not None:
        req.messages = normalize_history(req.messages)
    tools = plan_tools(req.tools, req.tool_choice, req.parallel_tool_calls, tokenizer, req.params)
    return ReplyPlan(tools=tools, thinks=thinks)


def with_prompt(plan: ReplyPlan, prompt_ids: list[int] | str, tokenizer: Any) -> ReplyPlan:
    """The plan, told whether the prompt leaves a `<think>` block open for the reply."""
    if not plan.thinks or isinstance(prompt_ids, str):
        return plan
    tail = tokenizer.decode(prompt_ids[-16:], skip_special_tokens=False)
    return ReplyPlan(plan.tools, plan.thinks, prompt_leaves_thinking_open(tail))

"""Pure translations between the Ollama API and corral's internal types.

Requests: `generate_to_internal`, `chat_to_internal`, with Modelfile defaults under the request's
own `options`. Responses: one chunk per engine delta, and a final chunk with `done_reason` and
counts and durations (nanoseconds).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from corral.core.model_options import merge_options, sampling_params
from corral.core.sampling_params import SamplingParams
from corral.errors import ValidationError
from corral.server import ollama_protocol as ol
from corral.server.generate_request import GenerateRequest, ModelDefaults, parse_keep_alive
from corral.server.structured_request import ollama_format_constraint
from corral.server.unknown_fields import reject_unknown_ollama


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def options_to_sampling(options: ol.Options | None, defaults: ModelDefaults) -> SamplingParams:
    """SamplingParams from the model's defaults overridden by the request's options.

    num_predict -1 (no limit) or -2 (fill the context) mean no max_tokens; Ollama's defaults
    otherwise apply: generation runs until end of sequence or a full context."""
    given = options.model_dump(exclude_none=True) if options is not None else {}
    return sampling_params(merge_options(defaults.options, given))


def _reject_images(images: list[str] | None) -> None:
    if images:
        raise ValidationError("images", "this server runs text-only models; images are not supported")


def context_length(options: ol.Options | None, defaults: ModelDefaults) -> int | None:
    """The request's `num_ctx`, else the Modelfile's; None when neither sets one."""
    value = options.num_ctx if options is not None and options.num_ctx is not None else defaults.options.get("num_ctx")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError("options.num_ctx", f"must be a positive whole number of tokens, got {value!r}")
    return value


def _sampling(req: ol.GenerateRequest | ol.ChatRequest, defaults: ModelDefaults) -> SamplingParams:
    params = options_to_sampling(req.options, defaults)
    params.structured_outputs = ollama_format_constraint(req.format)
    return params


def generate_to_internal(req: ol.GenerateRequest, defaults: ModelDefaults = ModelDefaults()) -> GenerateRequest:
    reject_unknown_ollama(req)
    _reject_images(req.images)
    return GenerateRequest(
        model=req.model,
        params=_sampling(req, defaults),
        prompt=req.prompt or "",
        system=req.system if req.system is not None else defaults.system,
        history=[] if req.raw or req.context else [dict(m) for m in defaults.messages],
        raw=req.raw,
        context=req.context,
        keep_alive=parse_keep_alive(req.keep_alive),
        think=req.think,
        num_ctx=context_length(req.options, defaults),
    )


def chat_to_internal(req: ol.ChatRequest, defaults: ModelDefaults = ModelDefaults()) -> GenerateRequest:
    reject_unknown_ollama(req)
    messages = [dict(m) for m in defaults.messages]  # Modelfile MESSAGE turns come first
    for m in req.messages or []:
        _reject_images(m.images)
        messages.append(m.model_dump(exclude_none=True, exclude={"images"}))
    return GenerateRequest(
        model=req.model,
        params=_sampling(req, defaults),
        messages=messages,
        system=defaults.system,
        tools=req.tools,
        keep_alive=parse_keep_alive(req.keep_alive),
        think=req.think,
        num_ctx=context_length(req.options, defaults),
    )


@dataclass(frozen=True)
class FinalStats:
    """Counts and durations (seconds) for the last chunk."""

    done_reason: str
    total_s: float = 0.0
    load_s: float = 0.0
    prompt_eval_count: int = 0
    prompt_eval_s: float = 0.0
    eval_count: int = 0
    eval_s: float = 0.0

    def fields(self) -> dict[str, Any]:
        ns = 1_000_000_000
        return dict(
            done=True, done_reason=self.done_reason, total_duration=int(self.total_s * ns),
            load_duration=int(self.load_s * ns), prompt_eval_count=self.prompt_eval_count,
            prompt_eval_duration=int(self.prompt_eval_s * ns), eval_count=self.eval_count,
            eval_duration=int(self.eval_s * ns),
        )


def done_reason(finish_reason: str | None) -> str:
    """Ollama's done_reason for an engine finish_reason ("stop", "length", "abort")."""
    return finish_reason or "stop"


def generate_chunk(model: str, text: str) -> ol.GenerateResponse:
    return ol.GenerateResponse(model=model, created_at=now_rfc3339(), response=text)


def generate_final(model: str, text: str, stats: FinalStats, context: list[int] | None) -> ol.GenerateResponse:
    """The last /api/generate chunk; `text` is what is still unsent (all of it when not streaming)."""
    return ol.GenerateResponse(model=model, created_at=now_rfc3339(), response=text, context=context, **stats.fields())


def chat_chunk(model: str, text: str) -> ol.ChatResponse:
    return ol.ChatResponse(model=model, created_at=now_rfc3339(), message=ol.ResponseMessage(content=text))


def chat_final(model: str, text: str, stats: FinalStats) -> ol.ChatResponse:
    return ol.ChatResponse(model=model, created_at=now_rfc3339(), message=ol.ResponseMessage(content=text),
                           **stats.fields())

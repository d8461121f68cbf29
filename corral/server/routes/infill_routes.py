"""llama.cpp's POST /infill: code completion between a prefix and a suffix (non-streaming)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from corral.core.sampling_params import SamplingParams
from corral.errors import ValidationError
from corral.server.accumulate import Accumulated
from corral.server.generate_request import GenerateRequest
from corral.server.generation import start_generation
from corral.server.infill import build_infill_prompt, model_fim_tokens
from corral.server.model_lease import default_model_name, leased
from corral.server.state import get_state, require_api_key, unless_disconnected
from corral.server.streaming import json_response

router = APIRouter(dependencies=[Depends(require_api_key)])


class InfillRequest(BaseModel):
    """llama.cpp's fields; `n_predict` -1 means until the context is full."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    input_prefix: str = ""
    input_suffix: str = ""
    input_extra: list[dict[str, Any]] = []
    prompt: str = ""
    n_predict: int = -1
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    seed: int | None = None
    stop: list[str] = []
    ignore_eos: bool = False
    stream: bool = False


class InfillResponse(BaseModel):
    content: str
    model: str
    tokens_predicted: int
    tokens_evaluated: int
    stop: bool = True
    stop_type: str  # "eos", "word" or "limit", as llama.cpp reports
    truncated: bool = False


@router.post("/infill")
async def infill(body: InfillRequest, request: Request):
    if body.stream:
        raise ValidationError("stream", "streaming /infill is not supported; send stream: false")
    state = get_state(request)
    name = default_model_name(state.manager, body.model)
    async with leased(state.manager, name) as model:
        ids = build_infill_prompt(model.engine.tokenizer, model_fim_tokens(model), body.input_prefix,
                                  body.input_suffix, body.prompt, body.input_extra)
    params = SamplingParams(temperature=body.temperature, top_k=body.top_k, top_p=body.top_p, seed=body.seed,
                            stop=body.stop, ignore_eos=body.ignore_eos,
                            max_tokens=body.n_predict if body.n_predict >= 0 else None)
    gen = await start_generation(state.manager, GenerateRequest(model=name, params=params, prompt=ids, raw=True),
                                 state.metrics)
    acc: Accumulated = await unless_disconnected(request, gen.collect())
    out = acc.completions.get(0)
    reason = out.finish_reason if out else None
    stop_type = "limit" if reason == "length" else "word" if out and isinstance(out.stop_reason, str) else "eos"
    return json_response(InfillResponse(content=out.text if out else "", model=name, tokens_predicted=gen.num_generated,
                                        tokens_evaluated=len(gen.prompt_token_ids), stop_type=stop_type))

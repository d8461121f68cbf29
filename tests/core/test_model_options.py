"""Model defaults under request options: one merge for every API (corral.core.model_options)."""
from __future__ import annotations

import pytest

from corral.core.model_options import merge_options, options_from_fields, sampling_params
from corral.errors import ValidationError
from corral.server import ollama_protocol as ol
from corral.server import openai_protocol as oa
from corral.server.generate_request import ModelDefaults
from corral.server.ollama_convert import chat_to_internal
from corral.server.openai_convert import chat_to_generate

MODEL = {"temperature": 0.2, "top_p": 0.9, "num_predict": 40, "stop": "<end>", "num_ctx": 2048}


def test_request_values_override_and_unset_values_keep_the_models():
    merged = merge_options(MODEL, {"temperature": 0.7, "top_p": None})
    params = sampling_params(merged)
    assert (params.temperature, params.top_p, params.max_tokens, params.stop) == (0.7, 0.9, 40, ["<end>"])
    assert sampling_params(merge_options(MODEL, {"num_predict": -1})).max_tokens is None
    with pytest.raises(ValidationError):
        sampling_params({"num_predict": 0})


def test_openai_and_ollama_requests_get_the_same_defaults():
    defaults = ModelDefaults(options=dict(MODEL))
    messages = [{"role": "user", "content": "hi"}]
    ollama = chat_to_internal(ol.ChatRequest(model="m", messages=messages, options={"top_k": 5}), defaults).params
    openai = chat_to_generate(oa.ChatCompletionRequest(model="m", messages=messages, top_k=5), defaults).params
    for params in (ollama, openai):
        assert (params.temperature, params.top_p, params.top_k, params.max_tokens) == (0.2, 0.9, 5, 40)
    openai = chat_to_generate(oa.ChatCompletionRequest(model="m", messages=messages, temperature=0, max_tokens=3),
                              defaults).params
    assert (openai.temperature, openai.max_tokens) == (0, 3)
    assert options_from_fields({"repetition_penalty": 1.1, "n": 2}) == {"repeat_penalty": 1.1}

"""Ollama requests -> GenerateRequest and results -> Ollama chunks, as pure functions."""
from __future__ import annotations

import pytest

from corral.errors import ValidationError
from corral.server import ollama_convert as conv
from corral.server import ollama_protocol as ol
from corral.server.accumulate import Accumulated
from corral.core.outputs import CompletionOutput, RequestOutput
from corral.server.generate_request import ModelDefaults, parse_keep_alive


def test_options_map_to_sampling_params_over_modelfile_defaults():
    req = ol.GenerateRequest.model_validate({
        "model": "m", "prompt": "hi", "system": "sys", "raw": True, "keep_alive": "1m30s",
        "options": {"num_predict": 7, "temperature": 0.2, "top_k": 5, "top_p": 0.8, "min_p": 0.1, "seed": 3,
                    "stop": ["\n"], "repeat_penalty": 1.2, "num_ctx": 4096, "mirostat": 0},
    })
    g = conv.generate_to_internal(req, ModelDefaults({"temperature": 0.9, "presence_penalty": 0.5}))
    p = g.params
    assert (p.max_tokens, p.temperature, p.top_k, p.top_p, p.min_p, p.seed, p.stop) == (7, 0.2, 5, 0.8, 0.1, 3, ["\n"])
    assert p.repetition_penalty == 1.2 and p.presence_penalty == 0.5
    assert (g.prompt, g.system, g.raw, g.keep_alive) == ("hi", "sys", True, 90.0)


def test_unlimited_num_predict_and_default_system():
    chat = ol.ChatRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "x"}],
                                          "options": {"num_predict": -1}})
    g = conv.chat_to_internal(chat, ModelDefaults(system="be nice"))
    assert g.params.max_tokens is None and g.system == "be nice" and g.messages == [{"role": "user", "content": "x"}]
    assert g.keep_alive is None


@pytest.mark.parametrize("options,param", [({"num_predict": 0}, "num_predict"), ({"temperature": -1.0}, "temperature"),
                                           ({"top_p": 2.0}, "top_p")])
def test_bad_options_raise(options, param):
    with pytest.raises(ValidationError) as e:
        conv.generate_to_internal(ol.GenerateRequest(model="m", prompt="x", options=ol.Options(**options)))
    assert e.value.param == param


def test_images_are_rejected():
    with pytest.raises(ValidationError):
        conv.generate_to_internal(ol.GenerateRequest(model="m", prompt="x", images=["aGk="]))


@pytest.mark.parametrize("value,seconds", [(None, None), (0, 0.0), (-1, -1.0), ("5m", 300.0), ("1h30m", 5400.0),
                                           ("-1s", -1.0), ("10", 10.0), ("250ms", 0.25), (2.5, 2.5)])
def test_parse_keep_alive(value, seconds):
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize("value", ["soon", "5x", "", True])
def test_parse_keep_alive_rejects_garbage(value):
    with pytest.raises(ValidationError):
        parse_keep_alive(value)


def test_final_chunk_has_nanosecond_durations_and_others_do_not():
    stats = conv.FinalStats("stop", total_s=1.5, load_s=0.25, prompt_eval_count=3, prompt_eval_s=0.5, eval_count=4, eval_s=0.75)
    final = conv.generate_final("m", "x", stats, [1, 2]).model_dump()
    assert final["done"] and final["done_reason"] == "stop" and final["context"] == [1, 2]
    assert (final["total_duration"], final["load_duration"], final["prompt_eval_duration"], final["eval_duration"]) == (
        1_500_000_000, 250_000_000, 500_000_000, 750_000_000)
    assert (final["prompt_eval_count"], final["eval_count"]) == (3, 4)
    chunk = conv.chat_chunk("m", "hi").model_dump()
    assert chunk["message"] == {"role": "assistant", "content": "hi"} and not chunk["done"]
    assert "done_reason" not in chunk and "eval_count" not in chunk
    assert chunk["created_at"].endswith("Z")


def test_accumulate_concatenates_deltas():
    acc = Accumulated()
    acc.add(RequestOutput("r", None, [1], [CompletionOutput(0, "a", [5]), CompletionOutput(1, "b", [6])]))
    acc.add(RequestOutput("r", None, [1], [CompletionOutput(0, "c", [7], "stop", "c")], finished=True))
    assert [(c.text, c.token_ids, c.finish_reason) for c in acc.ordered()] == [("ac", [5, 7], "stop"), ("b", [6], None)]
    assert acc.num_generated_tokens == 3 and acc.prompt_token_ids == [1]

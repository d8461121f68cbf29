"""Property-based fuzzing of the request models: whatever a client sends, parsing and translating
it either raises a typed error (pydantic's validation error, which the server turns into a 400, or
corral's CorralError) or gives a request the engine runs without failing a step."""
from __future__ import annotations

import math

import pydantic
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from corral.core.sampling_params import SamplingParams
from corral.errors import CorralError
from corral.server import ollama_convert, openai_convert
from corral.server import ollama_protocol as ol
from corral.server import openai_protocol as oa

FUZZ = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])
EDGE_INTS = st.sampled_from([0, 1, -1, 2, 20, 21, 128, 129, 2**31 - 1, 2**31, 2**63, 2**64, 2**70, -(2**63) - 1])
EDGE_FLOATS = st.sampled_from([0.0, 1e-300, 0.5, 1.0, 2.0, 2.5, 100.0, 1e300, -1e-9])
TEXT = st.text(st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010) | st.characters(), max_size=8)
SCALARS = (st.none() | st.booleans() | EDGE_INTS | st.integers(-300, 300) | EDGE_FLOATS
           | st.floats(allow_nan=True, allow_infinity=True) | TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                      max_leaves=6)
NUMBERS = EDGE_INTS | st.integers(-3, 300) | EDGE_FLOATS | st.floats(allow_nan=True, allow_infinity=True)

INTS = EDGE_INTS | st.integers(-3, 300)
BOOLS = st.booleans()
STOPS = TEXT | st.lists(TEXT, max_size=3)
TOKEN_IDS = st.lists(INTS, max_size=3)
# name -> what a client plausibly sends; VALUES (anything JSON) is mixed in for every field
SAMPLING_FIELDS = {"n": INTS, "temperature": NUMBERS, "top_k": INTS, "top_p": NUMBERS, "min_p": NUMBERS,
                   "repetition_penalty": NUMBERS, "presence_penalty": NUMBERS, "frequency_penalty": NUMBERS,
                   "seed": INTS, "max_tokens": INTS, "min_tokens": INTS, "ignore_eos": BOOLS, "stop": STOPS,
                   "stop_token_ids": TOKEN_IDS, "include_stop_str_in_output": BOOLS, "logprobs": INTS,
                   "skip_special_tokens": BOOLS}
OPENAI_FIELDS = {**{k: v for k, v in SAMPLING_FIELDS.items() if k not in ("logprobs",)},
                 "stream": BOOLS, "stream_options": st.fixed_dictionaries({"include_usage": BOOLS}), "user": TEXT}
OPENAI_CHAT_FIELDS = {**OPENAI_FIELDS, "logprobs": BOOLS, "top_logprobs": INTS, "max_completion_tokens": INTS,
                      "tools": VALUES}
OPENAI_COMPLETION_FIELDS = {**OPENAI_FIELDS, "logprobs": INTS, "echo": BOOLS, "suffix": TEXT}
OLLAMA_OPTIONS = {"num_predict": INTS, "temperature": NUMBERS, "top_k": INTS, "top_p": NUMBERS, "min_p": NUMBERS,
                  "seed": INTS, "stop": STOPS, "repeat_penalty": NUMBERS, "presence_penalty": NUMBERS,
                  "frequency_penalty": NUMBERS, "num_ctx": INTS}
MESSAGES = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant"]) | TEXT,
                                           "content": TEXT | VALUES}), max_size=3) | VALUES


def some_of(fields: dict, required: dict | None = None):
    """Bodies with `required` and up to three of `fields`, each plausible or any JSON value: few
    fields at a time, so one bad value is not always hidden behind another."""
    keys = st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)
    return keys.flatmap(lambda chosen: st.fixed_dictionaries(
        {**(required or {}), **{k: st.one_of(fields[k], fields[k], VALUES) if k != "stream" else fields[k]
                                for k in chosen}}))


def runs_in_the_engine(llm, params: SamplingParams) -> None:
    """Queue `params` on a real engine and step it: only CorralError may come out, no step may fail."""
    for name in ("temperature", "top_p", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty"):
        assert math.isfinite(getattr(params, name)), (name, getattr(params, name))
    assert 0 <= params.top_k < 2**31 and (params.max_tokens is None or 0 < params.max_tokens < 2**31)
    engine = llm.engine
    try:
        request_id = engine.add_request([1, 2, 3], params)
    except CorralError:
        return
    try:
        engine.step()  # prefills the three tokens and samples the first
    finally:
        engine.abort(request_id)
    assert engine.pop_failures() == {}


def parsed(model_type, body):
    try:
        return model_type.model_validate(body)
    except pydantic.ValidationError:
        return None


@pytest.fixture(scope="module")
def llm(reference_llm):
    return reference_llm


@FUZZ
@given(some_of(SAMPLING_FIELDS))
@example({"top_k": 2**63})
@example({"temperature": math.nan, "repetition_penalty": math.inf})
@example({"max_tokens": 2**70})
@example({"ignore_eos": 1, "stop": True})
def test_sampling_params_are_valid_or_a_validation_error(llm, fields):
    try:
        params = SamplingParams(**fields)
    except CorralError:
        return
    runs_in_the_engine(llm, params)


@FUZZ
@given(some_of(OPENAI_CHAT_FIELDS, {"model": st.just("m") | VALUES, "messages": MESSAGES}))
@example({"model": "m", "messages": [{"role": "user", "content": "hi"}], "top_k": 2**63})
@example({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": math.nan})
@example({"model": "m", "messages": [{"role": "user", "content": "hi"}], "seed": 2**70, "max_tokens": 2**70})
def test_openai_chat_bodies(llm, body):
    request = parsed(oa.ChatCompletionRequest, body)
    if request is None:
        return
    try:
        internal = openai_convert.chat_to_generate(request)
    except CorralError:
        return
    runs_in_the_engine(llm, internal.params)


@FUZZ
@given(some_of(OPENAI_COMPLETION_FIELDS, {"model": st.just("m"), "prompt": TEXT | st.lists(st.integers(0, 50))}))
def test_openai_completion_bodies(llm, body):
    request = parsed(oa.CompletionRequest, body)
    if request is None:
        return
    try:
        internals = openai_convert.completion_to_generate(request)
    except CorralError:
        return
    runs_in_the_engine(llm, internals[0].params)


@FUZZ
@given(some_of({"prompt": TEXT, "messages": MESSAGES, "system": TEXT, "raw": BOOLS,
                "context": st.lists(st.integers(0, 50)), "keep_alive": NUMBERS | TEXT | st.sampled_from(["5m", "-1s"]),
                "options": some_of(OLLAMA_OPTIONS)}, {"model": st.just("m") | VALUES}))
@example({"model": "m", "prompt": "hi", "options": {"top_k": 2**63, "repeat_penalty": math.nan}})
@example({"model": "m", "prompt": "hi", "keep_alive": math.nan})
@example({"model": "m", "messages": [{"role": "user", "content": "hi"}], "keep_alive": 1e300,
          "options": {"num_predict": 2**70}})
def test_ollama_generate_and_chat_bodies(llm, body):
    for model_type, convert in ((ol.GenerateRequest, ollama_convert.generate_to_internal),
                                (ol.ChatRequest, ollama_convert.chat_to_internal)):
        request = parsed(model_type, body)
        if request is None:
            continue
        try:
            internal = convert(request)
        except CorralError:
            continue
        assert internal.keep_alive is None or internal.keep_alive == -1 or 0 <= internal.keep_alive < 1e10
        runs_in_the_engine(llm, internal.params)

"""OpenAI requests -> GenerateRequest and engine deltas -> OpenAI objects, as pure functions."""
from __future__ import annotations

import pytest

from corral.core.outputs import CompletionOutput, Logprob, RequestOutput
from corral.errors import ValidationError
from corral.server import openai_convert as conv
from corral.server import openai_protocol as oa
from corral.server.generate_request import ModelDefaults

META = conv.ResponseMeta(id="chatcmpl-1", created=100, model="m")


def chat(**fields) -> oa.ChatCompletionRequest:
    return oa.ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields})


def test_chat_request_maps_sampling_fields_and_vllm_extras():
    req = conv.chat_to_generate(chat(
        n=2, stop="END", seed=7, max_tokens=5, max_completion_tokens=9, temperature=0.5, top_p=0.9,
        presence_penalty=0.1, frequency_penalty=0.2, top_k=3, min_p=0.05, repetition_penalty=1.1,
        ignore_eos=True, min_tokens=2, stop_token_ids=[4], user="someone", store=True, metadata={"x": "1"},
    ))
    p = req.params
    assert (p.n, p.stop, p.seed, p.max_tokens, p.temperature, p.top_p) == (2, ["END"], 7, 9, 0.5, 0.9)
    assert (p.presence_penalty, p.frequency_penalty, p.top_k, p.min_p, p.repetition_penalty) == (0.1, 0.2, 3, 0.05, 1.1)
    assert p.ignore_eos and p.min_tokens == 2 and p.stop_token_ids == [4] and p.logprobs is None
    assert req.messages == [{"role": "user", "content": "hi"}] and req.prompt is None


def test_chat_logprobs_and_defaults():
    req = conv.chat_to_generate(chat(logprobs=True, top_logprobs=3), ModelDefaults({"temperature": 0.0, "stop": ["x"]}, "be brief"))
    assert req.params.logprobs == 3 and req.params.temperature == 0.0 and req.params.stop == ["x"]
    assert req.system == "be brief"
    assert conv.chat_to_generate(chat(logprobs=True)).params.logprobs == 0
    assert conv.chat_to_generate(chat(temperature=1.0), ModelDefaults({"temperature": 0.0})).params.temperature == 1.0


@pytest.mark.parametrize("fields,param", [
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"temperature": -1}, "temperature"),
    ({"n": 0}, "n"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, "messages"),
])
def test_chat_request_rejects_bad_values(fields, param):
    with pytest.raises(ValidationError) as e:
        conv.chat_to_generate(chat(**fields))
    assert e.value.param == param


def test_content_parts_join_into_text():
    req = conv.chat_to_generate(chat(messages=[{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]))
    assert req.messages[0]["content"] == "ab"


def test_completion_prompts_accept_every_shape():
    assert conv.completion_prompts("a") == ["a"]
    assert conv.completion_prompts(["a", "b"]) == ["a", "b"]
    assert conv.completion_prompts([1, 2]) == [[1, 2]]
    assert conv.completion_prompts([[1], [2, 3]]) == [[1], [2, 3]]
    reqs = conv.completion_to_generate(oa.CompletionRequest(model="m", prompt=["a", "b"], logprobs=2))
    assert [r.prompt for r in reqs] == ["a", "b"] and all(r.raw and r.params.max_tokens == 16 for r in reqs)
    assert reqs[0].params.logprobs == 2
    with pytest.raises(ValidationError):
        conv.completion_prompts([])


def lp(token_id: int, logprob: float, rank: int, text: str) -> Logprob:
    return Logprob(token_id, logprob, rank, text)


def delta(index: int, text: str, ids: list[int], finish: str | None = None, logprobs=None) -> RequestOutput:
    out = CompletionOutput(index=index, text=text, token_ids=ids, finish_reason=finish, logprobs=logprobs)
    return RequestOutput("r", None, [1, 2, 3], [out], finished=finish is not None)


def test_stream_chunks_follow_openai_shape():
    roles = conv.chat_role_chunks(META, 2)
    assert [c.model_dump()["choices"][0]["delta"] for c in roles] == [{"role": "assistant", "content": ""}] * 2
    chunks = conv.chat_chunks(META, delta(1, "hi", [5], finish="stop"), None)
    dumped = [c.model_dump() for c in chunks]
    assert dumped[0]["choices"] == [{"index": 1, "delta": {"content": "hi"}, "logprobs": None, "finish_reason": None}]
    assert dumped[1]["choices"] == [{"index": 1, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
    assert all(d["object"] == "chat.completion.chunk" and d["id"] == "chatcmpl-1" and "usage" not in d for d in dumped)
    usage = conv.chat_usage_chunk(META, conv.usage(3, 4)).model_dump()
    assert usage["choices"] == [] and usage["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_chat_logprobs_carry_bytes_and_top_entries_by_rank():
    entries = [{5: lp(5, -0.1, 1, "é"), 6: lp(6, -2.0, 2, "a"), 7: lp(7, -3.0, 3, "b")}]
    chunk = conv.chat_chunks(META, delta(0, "é", [5], logprobs=entries), 2)[0]
    content = chunk.choices[0].logprobs.content
    assert content[0].token == "é" and content[0].bytes == [0xC3, 0xA9] and content[0].logprob == -0.1
    assert [t.token for t in content[0].top_logprobs] == ["é", "a"]


def test_completion_logprobs_use_parallel_lists_with_offsets():
    entries = [{5: lp(5, -0.1, 1, "ab")}, {9: lp(9, -1.5, 2, "c"), 8: lp(8, -0.5, 1, "d")}]
    out = CompletionOutput(index=0, text="abc", token_ids=[5, 9], finish_reason="length", logprobs=entries)
    choice = conv.completion_choice(3, out, 1, text_offset=10)
    assert choice.index == 3 and choice.text == "abc" and choice.finish_reason == "length"
    assert choice.logprobs.tokens == ["ab", "c"] and choice.logprobs.token_logprobs == [-0.1, -1.5]
    assert choice.logprobs.top_logprobs == [{"ab": -0.1}, {"d": -0.5}] and choice.logprobs.text_offset == [10, 12]


def test_whole_chat_completion():
    outs = [CompletionOutput(0, "hello", [4, 5], "stop"), CompletionOutput(1, "hi", [6], "length")]
    obj = conv.chat_completion(META, outs, None, conv.usage(3, 3)).model_dump()
    assert obj["object"] == "chat.completion" and obj["usage"]["total_tokens"] == 6
    assert [c["message"] for c in obj["choices"]] == [{"role": "assistant", "content": "hello"}, {"role": "assistant", "content": "hi"}]
    assert [c["finish_reason"] for c in obj["choices"]] == ["stop", "length"]


def test_a_completions_request_asks_for_at_most_2048_completions():
    from corral.server.openai_convert import MAX_COMPLETIONS_PER_REQUEST

    assert len(conv.completion_to_generate(oa.CompletionRequest(model="m", prompt=["a"] * 16, n=128))) == 16
    with pytest.raises(ValidationError) as e:
        conv.completion_to_generate(oa.CompletionRequest(model="m", prompt=["a"] * (MAX_COMPLETIONS_PER_REQUEST + 1)))
    assert e.value.param == "prompt"

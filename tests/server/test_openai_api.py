"""The OpenAI API on a real server, driven by the official `openai` client."""
from __future__ import annotations

import openai
import pytest

from corral.core.sampling_params import SamplingParams

PROMPT = "The quick brown fox"
MESSAGES = [{"role": "user", "content": "Hello, world! How are you today?"}]
GREEDY = {"temperature": 0, "max_tokens": 8, "extra_body": {"ignore_eos": True}}


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def chat_prompt_tokens(llm) -> int:
    tok = llm.get_tokenizer()
    return len(tok.encode(tok.apply_chat_template(MESSAGES, add_generation_prompt=True), add_special_tokens=False))


def test_chat_matches_offline_greedy_with_exact_usage(client, server, reference_llm):
    reply = client.chat.completions.create(model=server.model, messages=MESSAGES, **GREEDY)
    expected = reference_llm.chat(MESSAGES, SamplingParams(temperature=0, max_tokens=8, ignore_eos=True))[0]
    assert reply.object == "chat.completion" and reply.model == server.model and reply.id.startswith("chatcmpl-")
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == expected.outputs[0].text
    assert choice.finish_reason == "length"
    assert reply.usage.prompt_tokens == chat_prompt_tokens(reference_llm) == len(expected.prompt_token_ids)
    assert reply.usage.completion_tokens == 8 and reply.usage.total_tokens == reply.usage.prompt_tokens + 8


def test_chat_stream_has_role_chunk_one_id_and_usage(client, server):
    whole = client.chat.completions.create(model=server.model, messages=MESSAGES, **GREEDY)
    chunks = list(client.chat.completions.create(model=server.model, messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": True}, **GREEDY))
    assert {c.id for c in chunks} == {chunks[0].id} and all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant" and not chunks[0].choices[0].delta.content
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == whole.usage.model_dump()
    assert all(c.usage is None for c in chunks[:-1])


def test_completions_match_offline_greedy(client, server, reference_llm):
    reply = client.completions.create(model=server.model, prompt=PROMPT, **GREEDY)
    expected = reference_llm.generate(PROMPT, SamplingParams(temperature=0, max_tokens=8, ignore_eos=True))[0]
    assert reply.object == "text_completion" and reply.choices[0].text == expected.outputs[0].text
    assert reply.usage.prompt_tokens == len(expected.prompt_token_ids) and reply.usage.completion_tokens == 8
    streamed = list(client.completions.create(model=server.model, prompt=PROMPT, stream=True,
                                              stream_options={"include_usage": True}, **GREEDY))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == expected.outputs[0].text
    assert streamed[-1].usage.completion_tokens == 8 and {c.id for c in streamed} == {streamed[0].id}


def test_completions_take_lists_of_prompts_and_token_ids(client, server, reference_llm):
    tok = reference_llm.get_tokenizer()
    ids = tok.encode("Hello, world!")
    reply = client.completions.create(model=server.model, prompt=[PROMPT, "Numbers 0 1 2"], **GREEDY)
    by_ids = client.completions.create(model=server.model, prompt=ids, **GREEDY)
    expected = reference_llm.generate([PROMPT, "Numbers 0 1 2", {"prompt_token_ids": ids}],
                                      SamplingParams(temperature=0, max_tokens=8, ignore_eos=True))
    assert [c.index for c in reply.choices] == [0, 1]
    assert [c.text for c in reply.choices] == [e.outputs[0].text for e in expected[:2]]
    assert by_ids.choices[0].text == expected[2].outputs[0].text and by_ids.usage.prompt_tokens == len(ids)
    assert reply.usage.prompt_tokens == sum(len(e.prompt_token_ids) for e in expected[:2])


def test_n_and_seed_give_reproducible_independent_samples(client, server):
    kwargs = dict(model=server.model, messages=MESSAGES, n=2, seed=1234, temperature=1.0, max_tokens=12,
                  extra_body={"ignore_eos": True})
    first, again = client.chat.completions.create(**kwargs), client.chat.completions.create(**kwargs)
    assert [c.index for c in first.choices] == [0, 1] and first.usage.completion_tokens == 24
    assert [c.message.content for c in first.choices] == [c.message.content for c in again.choices]
    assert first.choices[0].message.content != first.choices[1].message.content
    streamed = list(client.chat.completions.create(stream=True, **kwargs))
    for i in (0, 1):
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices and c.choices[0].index == i)
        assert text == first.choices[i].message.content


def test_stop_string_ends_the_text_before_it(client, server):
    free = client.completions.create(model=server.model, prompt=PROMPT, **{**GREEDY, "max_tokens": 16})
    text = free.choices[0].text
    stop = text[len(text) // 2:len(text) // 2 + 2]
    stopped = client.completions.create(model=server.model, prompt=PROMPT, stop=[stop], **{**GREEDY, "max_tokens": 16})
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].text == text[:text.index(stop)]


def test_chat_logprobs_have_tokens_bytes_and_top_entries(client, server):
    reply = client.chat.completions.create(model=server.model, messages=MESSAGES, logprobs=True, top_logprobs=3, **GREEDY)
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens == 8
    # tokens are decoded one by one: partial UTF-8 shows as U+FFFD, hence `bytes`
    for t in content:
        assert t.logprob <= 0 and t.bytes == list(t.token.encode()) and len(t.top_logprobs) == 3
        assert t.top_logprobs[0].logprob == pytest.approx(t.logprob, abs=1e-4)  # greedy: the top token
        assert [x.logprob for x in t.top_logprobs] == sorted((x.logprob for x in t.top_logprobs), reverse=True)


def test_completion_logprobs_use_the_legacy_shape(client, server):
    reply = client.completions.create(model=server.model, prompt=PROMPT, logprobs=2, **GREEDY)
    lp = reply.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 8
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)
    assert all(len(top) <= 2 and max(top.values()) >= chosen - 1e-4 for top, chosen in zip(lp.top_logprobs, lp.token_logprobs))


def test_models_list_and_get(client, server):
    assert server.model in [m.id for m in client.models.list().data]
    assert client.models.retrieve(server.model).id == server.model
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")

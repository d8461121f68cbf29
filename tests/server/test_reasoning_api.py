"""Thinking apart from the answer on a tiny model whose template opens `<think>` for the reply
(as DeepSeek-R1 distills' do) unless `enable_thinking` is false (as Qwen3's takes it): the
random-weight model never closes the block, so every word it writes is thinking, or with
thinking switched off through the template, every word is the answer."""
from __future__ import annotations

import httpx
import ollama
import openai
import pytest
from server_harness import serve_in_thread

from tests.tokenizer.tokenizer_files import with_chat_template

THINKING_TEMPLATE = (
    "{%- for message in messages %}{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' }}"
    "{%- else %}{{ '<think>\\n' }}{%- endif %}{%- endif %}"
)
MESSAGES = [{"role": "user", "content": "Why?"}]
GREEDY = dict(max_tokens=12, temperature=0, extra_body={"ignore_eos": True})


@pytest.fixture(scope="module")
def thinking_server(tiny_models, empty_store, tmp_path_factory):
    from corral.server.app import create_app
    from corral.server.store_source import StoreModelSource

    folder = with_chat_template(tiny_models("qwen2", "hf"), tmp_path_factory.mktemp("thinker") / "m", THINKING_TEMPLATE)
    app = create_app([str(folder)], source=StoreModelSource(empty_store),
                     engine_kwargs={"max_model_len": 256, "kv_cache_memory": 8 << 20, "num_threads": 1})
    url, stop = serve_in_thread(app)
    yield url, str(folder)
    stop()


def test_openai_reasoning_content_whole_and_streamed(thinking_server):
    url, model = thinking_server
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(model=model, messages=MESSAGES, **GREEDY)
    message = reply.choices[0].message
    assert message.reasoning_content and not message.content
    chunks = list(client.chat.completions.create(model=model, messages=MESSAGES, stream=True, **GREEDY))
    streamed = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)
    assert streamed == message.reasoning_content
    off = client.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=12, temperature=0,
        extra_body={"ignore_eos": True, "chat_template_kwargs": {"enable_thinking": False}})
    assert off.choices[0].message.content and getattr(off.choices[0].message, "reasoning_content", None) is None


def test_ollama_think_and_thinking(thinking_server):
    url, model = thinking_server
    client = ollama.Client(host=url)
    options = {"temperature": 0, "num_predict": 12}
    reply = client.chat(model=model, messages=MESSAGES, think=True, options=options)
    assert reply.message.thinking and not reply.message.content
    parts = list(client.chat(model=model, messages=MESSAGES, think=True, options=options, stream=True))
    assert "".join(p.message.thinking or "" for p in parts) == reply.message.thinking
    reply = client.chat(model=model, messages=MESSAGES, think=False, options=options)
    assert reply.message.content and not reply.message.thinking
    reply = client.generate(model=model, prompt="Why?", think=True, options=options)
    assert reply.thinking and not reply.response


def test_think_on_a_model_that_does_not_think_is_a_400(server):
    r = httpx.post(server.url + "/api/chat", json={"model": server.model, "messages": MESSAGES, "think": True})
    assert r.status_code == 400 and "thinking" in r.json()["error"]
    r = httpx.post(server.url + "/v1/chat/completions",
                   json={"model": server.model, "messages": MESSAGES, "chat_template_kwargs": {"messages": []}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "chat_template_kwargs"


def test_streamed_reasoning_carries_every_tokens_logprobs(thinking_server):
    """The official client's chunks hold the same logprobs, token for token, as the whole reply."""
    url, model = thinking_server
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    for kwargs in ({}, {"extra_body": {"ignore_eos": True, "chat_template_kwargs": {"enable_thinking": False}}}):
        args = {**GREEDY, **kwargs, "logprobs": True, "top_logprobs": 2}
        whole = client.chat.completions.create(model=model, messages=MESSAGES, **args)
        expected = [(t.token, round(t.logprob, 4), [x.token for x in t.top_logprobs])
                    for t in whole.choices[0].logprobs.content]
        assert len(expected) == whole.usage.completion_tokens == 12
        chunks = list(client.chat.completions.create(model=model, messages=MESSAGES, stream=True, **args))
        streamed = [(t.token, round(t.logprob, 4), [x.token for x in t.top_logprobs])
                    for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
        assert streamed == expected

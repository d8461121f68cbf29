"""The Ollama API on a real server, driven by the official `ollama` client."""
from __future__ import annotations

from datetime import datetime, timezone

import httpx
import ollama
import pytest

from corral.core.sampling_params import SamplingParams

OPTIONS = {"temperature": 0, "num_predict": 6}
MESSAGES = [{"role": "user", "content": "Hello, world! How are you today?"}]


@pytest.fixture(scope="module")
def client(server):
    return ollama.Client(host=server.url)


def test_list_ps_and_version(client, server):
    assert server.model in [m.model for m in client.list().models]
    running = client.ps().models
    assert [m.model for m in running] == [server.model]
    assert running[0].size > 0 and running[0].context_length == 256
    assert running[0].expires_at > datetime.now(timezone.utc)  # preloaded models stay loaded
    assert running[0].details.family == "llama"
    placement = httpx.get(server.url + "/api/ps").json()["models"][0]["placement"]  # corral's own field
    assert placement == {"device": "cpu", "dtype": "float32", "attention_backend": "cpu",
                         "kv_cache_dtype": "float32", "weights": "dense"}


def test_show_describes_the_model(client, server):
    info = client.show(server.model)
    assert info.modelinfo["general.architecture"] == "llama"
    assert info.modelinfo["llama.block_count"] == 2 and info.modelinfo["general.parameter_count"] > 0
    assert info.details.format == "safetensors" and info.details.family == "llama"
    assert "<|start_header_id|>" in info.template and "completion" in info.capabilities
    assert info.modified_at is not None and info.parameters == ""


def test_generate_matches_offline_greedy_with_stats(client, server, reference_llm):
    reply = client.generate(model=server.model, prompt="The quick brown fox", raw=True, options=OPTIONS)
    expected = reference_llm.generate("The quick brown fox", SamplingParams(temperature=0, max_tokens=6))[0]
    out = expected.outputs[0]
    assert reply.response == out.text and reply.done and reply.done_reason == out.finish_reason
    assert reply.prompt_eval_count == len(expected.prompt_token_ids) and reply.eval_count == len(out.token_ids)
    assert reply.total_duration >= reply.prompt_eval_duration + reply.eval_duration > 0
    assert reply.load_duration >= 0
    assert list(reply.context) == expected.prompt_token_ids + out.token_ids


def test_generate_stream_ends_with_a_final_chunk(client, server):
    whole = client.generate(model=server.model, prompt="Numbers 0 1 2", options=OPTIONS)
    chunks = list(client.generate(model=server.model, prompt="Numbers 0 1 2", options=OPTIONS, stream=True))
    assert all(not c.done for c in chunks[:-1]) and chunks[-1].done
    assert "".join(c.response for c in chunks) == whole.response
    assert chunks[-1].eval_count == whole.eval_count and chunks[-1].done_reason == whole.done_reason
    assert chunks[-1].total_duration > 0 and chunks[0].total_duration is None


def test_chat_stream_and_not(client, server, reference_llm):
    reply = client.chat(model=server.model, messages=MESSAGES, options=OPTIONS)
    expected = reference_llm.chat(MESSAGES, SamplingParams(temperature=0, max_tokens=6))[0]
    assert reply.message.role == "assistant" and reply.message.content == expected.outputs[0].text
    assert reply.done and reply.prompt_eval_count == len(expected.prompt_token_ids)
    chunks = list(client.chat(model=server.model, messages=MESSAGES, options=OPTIONS, stream=True))
    assert "".join(c.message.content for c in chunks) == reply.message.content and chunks[-1].done


def test_system_prompt_goes_through_the_template(client, server, reference_llm):
    with_system = [{"role": "system", "content": "Be brief."}, *MESSAGES]
    expected = reference_llm.chat(with_system, SamplingParams(temperature=0, max_tokens=6))[0]
    reply = client.generate(model=server.model, prompt=MESSAGES[0]["content"], system="Be brief.", options=OPTIONS)
    assert reply.response == expected.outputs[0].text
    assert reply.prompt_eval_count == len(expected.prompt_token_ids)


def test_root_answers_head_and_get(server):
    import httpx

    assert httpx.get(server.url + "/").text == "corral is running"
    assert httpx.head(server.url + "/").status_code == 200

"""Sampling parameters end to end: seeds, stop strings, logprobs, n, penalties, validation."""
from __future__ import annotations

import pytest
import torch
import transformers

from corral import SamplingParams
from corral.errors import ValidationError

PROMPT = "The quick brown fox jumps over the lazy dog. def main():"


def test_seeded_sampling_is_reproducible_whatever_the_batch(make_llm):
    llm = make_llm("llama31", "hf")
    params = SamplingParams(temperature=1.0, top_p=0.9, top_k=50, seed=1234, max_tokens=16, ignore_eos=True)
    alone = llm.generate([PROMPT], params)[0].outputs[0].token_ids
    others = [SamplingParams(temperature=0.7, seed=s, max_tokens=s, ignore_eos=True) for s in (3, 9, 20)]
    mixed = llm.generate(["Hello", PROMPT, "x = [1, 2, 3]", "Zürich"], [others[0], params, others[1], others[2]])
    assert mixed[1].outputs[0].token_ids == alone
    different_seed = SamplingParams(temperature=1.0, top_p=0.9, top_k=50, seed=99, max_tokens=16, ignore_eos=True)
    assert llm.generate([PROMPT], different_seed)[0].outputs[0].token_ids != alone


def test_stop_string_split_across_tokens_stops_and_is_not_returned(make_llm):
    llm = make_llm("qwen2", "hf")
    tok = llm.get_tokenizer()
    greedy = SamplingParams(temperature=0, max_tokens=30, ignore_eos=True)
    full = llm.generate([PROMPT], greedy)[0].outputs[0]
    # Pick a stop string that starts inside one token and ends inside a later one.
    pieces = [tok.decode(full.token_ids[:i]) for i in range(len(full.token_ids) + 1)]
    k = next(i for i in range(3, len(pieces) - 2) if len(pieces[i]) - len(pieces[i - 1]) >= 2
             and len(pieces[i + 1]) > len(pieces[i]))
    stop = full.text[len(pieces[k]) - 1: len(pieces[k]) + 1]
    assert len(stop) == 2
    out = llm.generate([PROMPT], SamplingParams(temperature=0, max_tokens=30, ignore_eos=True, stop=[stop]))[0].outputs[0]
    assert out.text == full.text[: full.text.index(stop)]
    assert out.finish_reason == "stop" and out.stop_reason == stop
    kept = llm.generate([PROMPT], SamplingParams(temperature=0, max_tokens=30, ignore_eos=True, stop=[stop],
                                                 include_stop_str_in_output=True))[0].outputs[0]
    assert kept.text == full.text[: full.text.index(stop) + 2]


def test_stop_token_ids_and_min_tokens(make_llm):
    llm = make_llm("qwen2", "hf")
    greedy = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    full = llm.generate([PROMPT], greedy)[0].outputs[0]
    first = full.token_ids[0]
    stopped = llm.generate([PROMPT], SamplingParams(temperature=0, max_tokens=12, stop_token_ids=[first]))[0].outputs[0]
    assert stopped.token_ids == [first] and stopped.text == "" and stopped.stop_reason == first
    later = llm.generate([PROMPT], SamplingParams(temperature=0, max_tokens=12, stop_token_ids=[first], min_tokens=3))
    assert len(later[0].outputs[0].token_ids) >= 3
    assert first not in later[0].outputs[0].token_ids[:3]


def test_logprobs_match_the_model_distribution(make_llm):
    llm = make_llm("qwen3", "hf")
    out = llm.generate([PROMPT], SamplingParams(temperature=0, max_tokens=4, ignore_eos=True, logprobs=3))[0]
    completion = out.outputs[0]
    assert len(completion.logprobs) == 4
    expected = torch.log_softmax(llm.engine.prompt_logits(out.prompt_token_ids)[-1].double(), -1)
    first = completion.logprobs[0]
    chosen = completion.token_ids[0]
    assert first[chosen].rank == 1
    assert first[chosen].logprob == pytest.approx(float(expected[chosen]), abs=1e-4)
    top3 = expected.topk(3)
    assert {t: round(lp.logprob, 4) for t, lp in first.items()} == {
        int(t): round(float(v), 4) for t, v in zip(top3.indices, top3.values)
    }


def test_n_samples_share_the_prompt_and_differ(make_llm):
    llm = make_llm("qwen2", "hf")
    greedy = llm.generate([PROMPT], SamplingParams(n=3, temperature=0, max_tokens=8, ignore_eos=True))[0]
    assert len(greedy.outputs) == 3 and len({tuple(o.token_ids) for o in greedy.outputs}) == 1
    sampled = llm.generate([PROMPT], SamplingParams(n=3, temperature=1.5, seed=5, max_tokens=8, ignore_eos=True))[0]
    assert [o.index for o in sampled.outputs] == [0, 1, 2]
    assert len({tuple(o.token_ids) for o in sampled.outputs}) == 3
    again = llm.generate([PROMPT], SamplingParams(n=3, temperature=1.5, seed=5, max_tokens=8, ignore_eos=True))[0]
    assert [o.token_ids for o in again.outputs] == [o.token_ids for o in sampled.outputs]


def test_repetition_penalty_matches_transformers(make_llm, tiny_models):
    llm = make_llm("llama", "hf")
    out = llm.generate([PROMPT], SamplingParams(temperature=0, max_tokens=10, ignore_eos=True,
                                               repetition_penalty=1.8))[0]
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_models("llama", "hf"), dtype=torch.float64)
    ids = torch.tensor([out.prompt_token_ids])
    ref = model.generate(ids, max_new_tokens=10, min_new_tokens=10, do_sample=False, repetition_penalty=1.8,
                         eos_token_id=None, pad_token_id=0)
    assert out.outputs[0].token_ids == ref[0, ids.shape[1]:].tolist()
    plain = llm.generate([PROMPT], SamplingParams(temperature=0, max_tokens=10, ignore_eos=True))[0]
    assert plain.outputs[0].token_ids != out.outputs[0].token_ids


def test_frequency_and_presence_penalties_change_greedy_choice(make_llm):
    llm = make_llm("qwen2", "hf")
    base = llm.generate([PROMPT], SamplingParams(temperature=0, max_tokens=20, ignore_eos=True))[0].outputs[0]
    pen = llm.generate([PROMPT], SamplingParams(temperature=0, max_tokens=20, ignore_eos=True, frequency_penalty=2.0,
                                               presence_penalty=2.0))[0].outputs[0]
    # Greedy output of a random model repeats; strong penalties must reduce repeats.
    assert len(set(pen.token_ids)) > len(set(base.token_ids))


@pytest.mark.parametrize("field,value", [
    ("temperature", -0.5), ("top_p", 0.0), ("top_p", 1.5), ("max_tokens", 0), ("min_p", 2.0),
    ("n", 0), ("presence_penalty", 3.0), ("repetition_penalty", 0.0), ("logprobs", 50),
])
def test_invalid_sampling_values_name_the_field(field, value):
    with pytest.raises(ValidationError) as err:
        SamplingParams(**{field: value})
    assert err.value.param == field


def test_too_many_stop_strings_is_rejected():
    with pytest.raises(ValidationError) as err:
        SamplingParams(stop=[f"s{i}" for i in range(100)])
    assert err.value.param == "stop"

"""Constrained decoding in the engine: random weights, so every output is valid only because the
grammar made it so, whatever the model wanted."""
from __future__ import annotations

import json
import re

import jsonschema
import pytest

from corral import SamplingParams
from corral.core.structured_outputs import StructuredOutputsParams as Structured
from corral.errors import ValidationError
from corral.structured.manager import StructuredOutputManager
from fixtures.json_schemas import SCHEMAS

FAST = dict(num_threads=1)


@pytest.fixture(scope="module")
def llm(make_llm):
    return make_llm("qwen2", **FAST)


def test_every_schema_gives_valid_json(llm):
    params = [SamplingParams(max_tokens=150, temperature=0.0 if i % 3 == 0 else 0.9, seed=i,
                             structured_outputs=Structured(json=schema)) for i, schema in enumerate(SCHEMAS)]
    outs = llm.generate([f"Answer {i}:" for i in range(len(SCHEMAS))], params)
    assert len(SCHEMAS) >= 20
    for schema, out in zip(SCHEMAS, outs):
        c = out.outputs[0]
        assert c.finish_reason == "stop", (schema, c.text)
        jsonschema.validate(json.loads(c.text), schema, format_checker=jsonschema.FormatChecker())


def test_chat_in_the_python_api_takes_the_same_constraint(llm):
    params = SamplingParams(n=2, max_tokens=150, temperature=1.0, seed=7,
                            structured_outputs=Structured(json=SCHEMAS[0]))
    (out,) = llm.chat([{"role": "user", "content": "Who?"}], params)
    assert len(out.outputs) == 2
    for c in out.outputs:
        jsonschema.validate(json.loads(c.text), SCHEMAS[0])


def test_json_object_regex_choice_and_gbnf(llm):
    specs = [
        (Structured(json_object=True), lambda t: isinstance(json.loads(t), dict)),
        (Structured(json='{"type": "array", "items": {"type": "boolean"}, "maxItems": 3}'),
         lambda t: all(isinstance(x, bool) for x in json.loads(t))),
        (Structured(regex=r"[a-z]{2,4}-[0-9]{2}"), lambda t: re.fullmatch(r"[a-z]{2,4}-[0-9]{2}", t)),
        (Structured(choice=["yes", "no", "maybe not"]), lambda t: t in ("yes", "no", "maybe not")),
        (Structured(grammar='root ::= "(" [0-9]{1,3} ("," [0-9]{1,3})? ")"'),
         lambda t: re.fullmatch(r"\(\d{1,3}(,\d{1,3})?\)", t)),
        (Structured(grammar='start: "<" NAME ">"\nNAME: /[a-z]{1,5}/'), lambda t: re.fullmatch(r"<[a-z]{1,5}>", t)),
    ]
    for temperature in (0.0, 1.0):
        params = [SamplingParams(max_tokens=60, temperature=temperature, seed=7, structured_outputs=s) for s, _ in specs]
        outs = llm.generate(["Say something"] * len(specs), params)
        for (spec, ok), out in zip(specs, outs):
            text = out.outputs[0].text
            if spec.kind == "json_object" and out.outputs[0].finish_reason == "length":
                continue  # any object may run long; the bounded ones above must finish
            assert ok(text), (spec, text)


def test_free_requests_get_the_same_tokens_next_to_constrained_ones(llm):
    free = [SamplingParams(max_tokens=12, temperature=0), SamplingParams(max_tokens=12, temperature=0.8, seed=3)]
    alone = llm.generate(["The fox", "The dog"], free)
    constrained = [SamplingParams(max_tokens=30, temperature=t, seed=5, structured_outputs=Structured(json=SCHEMAS[0]))
                   for t in (0.0, 1.0)]
    mixed = llm.generate(["Name?", "The fox", "Age?", "The dog"], [constrained[0], free[0], constrained[1], free[1]])
    assert mixed[1].outputs[0].token_ids == alone[0].outputs[0].token_ids
    assert mixed[3].outputs[0].token_ids == alone[1].outputs[0].token_ids


def test_n_samples_chunked_prefill_preemption_and_prefix_cache(make_llm):
    # A cache of few blocks and a small token budget: prompts arrive in chunks, requests get
    # preempted and recomputed, and the repeated prompt hits the prefix cache.
    llm = make_llm("qwen2", max_num_batched_tokens=16, max_num_seqs=8, kv_cache_memory=1 << 19, **FAST)
    prompt = "The quick brown fox jumps over the lazy dog. " * 6
    pattern = r"(ab|cd)+-[0-9]{3}[a-f]{20}"
    params = SamplingParams(n=4, max_tokens=60, temperature=1.0, seed=11, structured_outputs=Structured(regex=pattern))
    outs = llm.generate([prompt, prompt + "Again."], params)
    for out in outs:
        assert len(out.outputs) == 4
        for c in out.outputs:
            assert c.finish_reason == "stop" and re.fullmatch(pattern, c.text), c.text
    assert llm.engine.scheduler.num_preemptions > 0
    assert llm.engine.scheduler.prefix_cache_hits > 0
    assert not llm.engine.structured._matchers  # every matcher released


def test_stop_strings_and_max_tokens_end_constrained_requests(llm):
    spec = Structured(regex=r"[a-z]{8}STOP[a-z]{8}")
    out = llm.generate(["x"], SamplingParams(max_tokens=60, temperature=0.5, seed=1, stop=["STOP"],
                                             structured_outputs=spec))[0].outputs[0]
    assert out.finish_reason == "stop" and out.stop_reason == "STOP" and re.fullmatch("[a-z]{8}", out.text)
    out = llm.generate(["x"], SamplingParams(max_tokens=3, structured_outputs=spec))[0].outputs[0]
    assert out.finish_reason == "length" and len(out.token_ids) == 3


def test_abort_releases_the_matcher(llm):
    engine = llm.engine
    rid = engine.add_request("Hello", SamplingParams(n=2, max_tokens=50, structured_outputs=Structured(regex="[a-z]+")))
    engine.step()
    assert engine.structured.active
    engine.abort(rid)
    assert not engine.structured.active and not engine.has_unfinished()


@pytest.mark.parametrize("spec, words", [
    (Structured(json={"type": "strin"}), "JSON schema"),
    (Structured(json='{"type": '), "not valid JSON"),
    (Structured(json={"type": "array", "uniqueItems": True}), "uniqueItems"),
    (Structured(regex="a(b"), "regular expression"),
    (Structured(grammar="root ::= missing"), "grammar"),
    (Structured(grammar="start: missing"), "grammar"),
    (Structured(choice=["a"], param="guided_choice"), None),
])
def test_bad_grammars_fail_before_queueing(llm, spec, words):
    if words is None:  # a valid one, for contrast
        assert llm.generate(["x"], SamplingParams(max_tokens=5, structured_outputs=spec))[0].outputs[0].text == "a"
        return
    with pytest.raises(ValidationError) as e:
        llm.engine.add_request("x", SamplingParams(structured_outputs=spec))
    assert e.value.param == "structured_outputs" and words in e.value.message
    assert not llm.engine.has_unfinished()


def test_params_take_exactly_one_constraint():
    with pytest.raises(ValidationError):
        Structured()
    with pytest.raises(ValidationError):
        Structured(json={}, regex="a")
    with pytest.raises(ValidationError):
        Structured(choice=[])


def test_a_grammar_that_admits_no_token_ends_the_request_with_an_error(llm, monkeypatch):
    engine = llm.engine
    real = engine.structured.masks

    def masks(ids):
        out = real(ids)
        for rid in list(out.rows):
            if rid.startswith("dead"):
                del out.rows[rid]
                out.dead[rid] = "the output grammar admits no token here"
        return out

    monkeypatch.setattr(engine.structured, "masks", masks)
    engine.add_request("x", SamplingParams(max_tokens=20, structured_outputs=Structured(regex="[a-z]+")), "dead-1")
    engine.add_request("y", SamplingParams(max_tokens=5, structured_outputs=Structured(regex="[a-z]+")), "live-1")
    for _ in range(20):
        if not engine.has_unfinished():
            break
        engine.step()
    dead, live = engine.pop_final("dead-1").outputs[0], engine.pop_final("live-1").outputs[0]
    assert dead.finish_reason == "error" and "admits no token" in dead.stop_reason
    assert live.finish_reason == "length" and re.fullmatch("[a-z]+", live.text)


class _ByteTokenizer:
    """Three tokens: "a", "b" and an end token; nothing can spell "c"."""

    vocab_size = 3
    eos_token_id = 2
    bos_token_id = None
    eos_token_ids = frozenset({2})

    def token_to_bytes(self, i):
        return [b"a", b"b", b"</s>"][i]

    def is_special(self, i):
        return i == 2

    def encode(self, text, add_special_tokens=False):
        return [{"a": 0, "b": 1}[ch] for ch in text if ch in "ab"]


def test_manager_reports_a_mask_with_no_token():
    manager = StructuredOutputManager(_ByteTokenizer(), num_ids=40)
    manager.add("ok", Structured(regex="ab"))
    manager.add("stuck", Structured(regex="ac"))
    masks = manager.masks(["ok", "stuck", "free"])
    assert set(masks.rows) == {"ok", "stuck"} and not masks.dead
    assert int(masks.rows["ok"][0]) == 0b001  # only "a"
    assert manager.accept("ok", 0) is None and manager.accept("ok", 1) == "done"
    assert manager.accept("stuck", 0) is None
    masks = manager.masks(["stuck"])
    assert not masks.rows and "admits no token" in masks.dead["stuck"]


def test_sampler_bitmask_forbids_exactly_the_cleared_bits():
    import numpy as np
    import torch

    from corral.layers.sampler import _apply_bitmasks

    vocab, words = 1000, (1000 + 31) // 32
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, vocab, generator=g)
    masks = torch.randint(-2**31, 2**31 - 1, (3, words), dtype=torch.int32, generator=g)
    expected = logits.clone()
    for row in (0, 2):
        bits = np.unpackbits(masks[row].numpy().view(np.uint8), bitorder="little")[:vocab]
        expected[row][torch.from_numpy(bits == 0)] = float("-inf")
    _apply_bitmasks(logits, [(0, masks[0]), (2, masks[2])])
    assert torch.equal(logits, expected)

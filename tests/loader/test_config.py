"""ModelConfig from GGUF metadata agrees with ModelConfig from config.json."""
import dataclasses
import json

import pytest

from corral.errors import UnsupportedModelError
from corral.loader.gguf_config import config_from_gguf
from corral.loader.gguf_file import GGUFFile
from corral.loader.hf_config import config_from_hf
from fixtures.tiny_models import GGUF_ARCHS


def hf_config(folder):
    return config_from_hf(json.loads((folder / "config.json").read_text()))


@pytest.mark.parametrize("arch", GGUF_ARCHS)
def test_gguf_config_equals_hf_config(tiny_models, arch):
    want = hf_config(tiny_models(arch, "hf"))
    got = config_from_gguf(GGUFFile(tiny_models(arch, "F16")))
    assert got.torch_dtype == "float16"
    assert got.eos_token_ids[0] == want.eos_token_ids[0]
    if arch == "mistral":  # llama.cpp writes Mistral as arch "llama"
        assert (got.architecture, got.model_type) == ("LlamaForCausalLM", "llama")
        want = dataclasses.replace(want, architecture=got.architecture, model_type=got.model_type)
    assert dataclasses.replace(got, torch_dtype="float32", eos_token_ids=want.eos_token_ids) == want


def test_llama31_rope_scaling(tiny_models):
    cfg = config_from_gguf(GGUFFile(tiny_models("llama31", "Q8_0")))
    assert cfg.rope_scaling == {
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    assert cfg.rope_theta == 500000.0


@pytest.mark.parametrize("arch,tied,bias,qk_norm", [
    ("llama", False, False, False), ("qwen2", True, True, False), ("qwen2_untied", False, True, False),
    ("qwen3", True, False, True), ("llama32", True, False, False),
])
def test_flags_from_tensor_presence(tiny_models, arch, tied, bias, qk_norm):
    cfg = config_from_gguf(GGUFFile(tiny_models(arch, "Q4_0")))
    assert (cfg.tie_word_embeddings, cfg.attention_bias, cfg.qk_norm) == (tied, bias, qk_norm)


def test_hf_defaults_and_transformers4_keys():
    cfg = config_from_hf({
        "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100, "head_dim": None,
        "rope_theta": 500000.0, "rope_scaling": {"type": "linear", "factor": 2.0}, "eos_token_id": [7, 9],
    })
    assert (cfg.head_dim, cfg.num_key_value_heads) == (16, 4)
    assert cfg.rope_scaling == {"rope_type": "linear", "factor": 2.0}
    assert cfg.rope_theta == 500000.0
    assert cfg.eos_token_ids == (7, 9)
    assert not cfg.tie_word_embeddings and not cfg.attention_bias


def test_qwen2_always_has_qkv_bias_and_ignores_unused_window():
    cfg = config_from_hf({
        "architectures": ["Qwen2ForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
        "sliding_window": 4096, "use_sliding_window": False,
    })
    assert cfg.attention_bias and cfg.sliding_window is None and cfg.model_type == "qwen2"


def test_unknown_hf_architecture_lists_supported():
    with pytest.raises(UnsupportedModelError, match="GPTNeoXForCausalLM.*LlamaForCausalLM"):
        config_from_hf({"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox"})

"""Family-declared config semantics that the tiny fixtures do not reach: LongRoPE's long factors,
config.json keys as older transformers wrote them, and what is refused."""
from __future__ import annotations

import pytest
import torch
import transformers
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from corral.errors import ModelFileError
from corral.layers.rotary import inverse_frequencies
from corral.loader.hf_config import config_from_hf
from corral.models.gemma import settings

PHI3 = dict(architectures=["Phi3ForCausalLM"], model_type="phi3", vocab_size=100, hidden_size=256,
            intermediate_size=512, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
            max_position_embeddings=131072, original_max_position_embeddings=4096, rope_theta=10000.0,
            rope_scaling={"type": "longrope", "short_factor": [1.0 + 0.05 * i for i in range(32)],
                          "long_factor": [3.0 + 0.25 * i for i in range(32)]})


@pytest.mark.parametrize("max_positions", [4096, 8192])
def test_longrope_matches_transformers_within_and_past_the_original_context(max_positions):
    cfg = config_from_hf(PHI3)
    got, factor = inverse_frequencies(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling, max_positions)
    hf_config = transformers.Phi3Config(**{k: v for k, v in PHI3.items() if k != "architectures"})
    want, want_factor = ROPE_INIT_FUNCTIONS["longrope"](hf_config, "cpu", seq_len=max_positions)
    torch.testing.assert_close(got.float(), want, rtol=1e-6, atol=0)
    assert factor == pytest.approx(want_factor)
    if max_positions > 4096:  # the long factors, not the short ones
        short, _ = inverse_frequencies(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling, 4096)
        assert not torch.allclose(got, short)


PHI4_MINI = {**PHI3, "hidden_size": 3072, "num_attention_heads": 24, "num_key_value_heads": 8,
             "partial_rotary_factor": 0.75, "tie_word_embeddings": True,
             "rope_scaling": {"type": "longrope", "short_factor": [1.0 + 0.05 * i for i in range(48)],
                              "long_factor": [3.0 + 0.25 * i for i in range(48)]}}


@pytest.mark.parametrize("max_positions", [4096, 8192])
def test_phi4_mini_partial_rotary_longrope_matches_transformers(max_positions):
    """Phi-4-mini: 96 of a head's 128 dims rotate, LongRoPE factors over those 48 frequencies."""
    cfg = config_from_hf(PHI4_MINI)
    assert (cfg.head_dim, cfg.rotary_dim, cfg.tie_word_embeddings) == (128, 96, True)
    got, factor = inverse_frequencies(cfg.rotary_dim, cfg.rope_theta, cfg.rope_scaling, max_positions)
    hf_config = transformers.Phi3Config(**{k: v for k, v in PHI4_MINI.items() if k != "architectures"})
    want, want_factor = ROPE_INIT_FUNCTIONS["longrope"](hf_config, "cpu", seq_len=max_positions)
    torch.testing.assert_close(got.float(), want, rtol=1e-6, atol=0)
    assert factor == pytest.approx(want_factor)


@pytest.mark.parametrize("partial", [0.01, 0.3])  # of a 64-wide head: no dims, 19 dims
def test_partial_rotary_of_no_even_width_is_a_model_file_error(partial):
    with pytest.raises(ModelFileError, match="rotary width"):
        config_from_hf({**PHI3, "partial_rotary_factor": partial})


def test_gemma3_config_in_transformers_4_keys():
    """Hub config.json files of Gemma 3 hold rope_theta, rope_local_base_freq, rope_scaling and
    sliding_window_pattern, and omit keys the config class defaults (heads, head_dim, ...)."""
    cfg = config_from_hf({
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "hidden_size": 1152,
        "intermediate_size": 6912, "num_hidden_layers": 13, "vocab_size": 262144, "rope_theta": 1000000.0,
        "rope_local_base_freq": 10000.0, "rope_scaling": {"rope_type": "linear", "factor": 8.0},
        "sliding_window": 512, "sliding_window_pattern": 6, "query_pre_attn_scalar": 256,
        "torch_dtype": "bfloat16",
    })
    gemma = settings(cfg)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim) == (8, 4, 256)
    assert cfg.rope_theta == 1e6 and cfg.rope_scaling == {"rope_type": "linear", "factor": 8.0}
    assert gemma.rope_local_theta == 10000.0 and gemma.sliding_window == 512
    assert [i for i, s in enumerate(gemma.sliding_layers) if not s] == [5, 11]
    assert cfg.hidden_act == "gelu_pytorch_tanh" and cfg.tie_word_embeddings and cfg.sliding_window is None
    layers = gemma.layers()
    assert layers[5].rope == "global" and layers[5].sliding_window is None
    assert layers[0].rope == "local" and layers[0].sliding_window == 512 and layers[0].scale == 256**-0.5


def test_gemma_embedding_scale_is_rounded_to_the_checkpoint_dtype():
    from corral.models.gemma import embed_scale

    assert embed_scale(1152, "bfloat16") == float(torch.tensor(1152**0.5, dtype=torch.bfloat16))
    assert embed_scale(1152, "float32") == float(torch.tensor(1152**0.5, dtype=torch.float32))
    assert embed_scale(1152, "bfloat16") != embed_scale(1152, "float32")


@pytest.mark.parametrize("change", [{"num_local_experts": 10**9}, {"num_experts_per_tok": 5}, {"num_experts_per_tok": 0}])
def test_mixture_counts_out_of_range_are_a_model_file_error(change):
    mixtral = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "vocab_size": 100,
               "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_local_experts": 4, "num_experts_per_tok": 2}
    with pytest.raises(ModelFileError, match="experts a token out of"):
        config_from_hf({**mixtral, **change})


@pytest.mark.parametrize("count,message", [(3, "does not match the router"), (2**31 - 1, "at most 4096")])
def test_gguf_expert_count_must_match_the_router(tiny_models, tmp_path, count, message):
    """A Mixtral file claiming other experts than its router scores is refused before any list of
    expert weights is built."""
    from corral.loader.weights import load_model_source
    from fixtures.legacy_gguf import copy_gguf

    path = copy_gguf(tiny_models("mixtral", "F32"), tmp_path / "bad.gguf", {"llama.expert_count": count})
    with pytest.raises(ModelFileError, match=message):
        load_model_source(path)


def test_gemma3_gguf_sliding_pattern_as_one_flag_a_layer(tiny_models, tmp_path):
    """Newer llama.cpp files store attention.sliding_window_pattern as a flag a layer (true: sliding)."""
    from corral.loader.weights import load_model_source
    from fixtures.legacy_gguf import copy_gguf

    flags = [True, False, True, True, False, True]
    path = copy_gguf(tiny_models("gemma3", "F32"), tmp_path / "flags.gguf",
                     {"gemma3.attention.sliding_window_pattern": flags})
    cfg = load_model_source(path).config
    assert settings(cfg).sliding_layers == tuple(flags) and cfg.sliding_window is None  # global layers
    every = copy_gguf(tiny_models("gemma3", "F32"), tmp_path / "every.gguf",
                      {"gemma3.attention.sliding_window_pattern": [True] * 6})
    assert load_model_source(every).config.sliding_window == 12  # every layer windowed: blocks released
    bad = copy_gguf(tiny_models("gemma3", "F32"), tmp_path / "short.gguf",
                    {"gemma3.attention.sliding_window_pattern": flags[:4]})
    with pytest.raises(ModelFileError, match="one true/false a layer"):
        load_model_source(bad)

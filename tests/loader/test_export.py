"""export_gguf writes the metadata llama.cpp reads, and files corral reads back."""
import numpy as np
import pytest

from corral.errors import ValidationError
from corral.loader.gguf_export import export_gguf
from corral.loader.gguf_file import GGUFFile
from corral.loader.rope_llama3 import llama3_freq_factors


def test_metadata_and_tokenizer(tiny_models):
    gf = GGUFFile(tiny_models("qwen2", "Q8_0"))
    assert gf.architecture == "qwen2"
    assert gf.get("general.name") == "tiny-qwen2"
    assert gf.get("general.file_type") == 7
    assert gf.get("general.quantization_version") == 2
    assert gf.get("qwen2.context_length") == 32768
    assert gf.get("qwen2.attention.head_count_kv") == 2
    assert gf.get("tokenizer.ggml.model") == "gpt2"
    assert len(gf.get("tokenizer.ggml.tokens")) == gf.tensors["token_embd.weight"].shape[0]
    assert "im_start" in gf.get("tokenizer.chat_template")
    assert "output.weight" not in gf.tensors  # tied embeddings are written once


def test_llama31_writes_rope_freqs_like_llama_cpp(tiny_models):
    gf = GGUFFile(tiny_models("llama31", "F16"))
    t = gf.tensors["rope_freqs.weight"]
    assert t.type_name == "F32" and t.shape == (32,)
    scaling = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    np.testing.assert_array_equal(np.asarray(t.data), llama3_freq_factors(scaling, 64, 500000.0))
    assert gf.get("llama.rope.scaling.type") is None  # llama.cpp asserts on unknown scaling types


def test_norms_stay_f32(tiny_models):
    gf = GGUFFile(tiny_models("qwen3", "Q4_0"))
    assert gf.tensors["blk.0.attn_q_norm.weight"].type_name == "F32"
    assert gf.tensors["output_norm.weight"].type_name == "F32"
    assert gf.tensors["blk.0.attn_q.weight"].type_name == "Q4_0"


def test_unknown_weight_type(tiny_models, tmp_path):
    with pytest.raises(ValidationError, match="weight_type"):
        export_gguf(tiny_models("llama", "hf"), tmp_path / "x.gguf", "Q7_K")


def test_without_tokenizer_writes_special_ids(tiny_models, tmp_path):
    out = export_gguf(tiny_models("llama", "hf"), tmp_path / "x.gguf", "F32", with_tokenizer=False)
    gf = GGUFFile(out)
    assert gf.get("tokenizer.ggml.tokens") is None
    assert (gf.get("tokenizer.ggml.bos_token_id"), gf.get("tokenizer.ggml.eos_token_id")) == (1, 2)

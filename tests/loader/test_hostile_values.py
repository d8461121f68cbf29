"""The hostile values the issue names each get a one-line typed error that names the culprit, before
anything is allocated from them."""
from __future__ import annotations

import json
import math
import shutil
import tracemalloc

import gguf
import pytest

from corral.errors import ModelFileError, UnsupportedModelError
from corral.loader import load_model_source
from fixtures.hostile_models import open_model, rewrite_gguf

V = gguf.GGUFValueType


def refused(path, match: str, error=ModelFileError) -> str:
    """Open `path` as the engine does; it must raise `error` matching `match` with a one-line
    message, allocating little (the small model needs about a megabyte)."""
    tracemalloc.start()
    try:
        with pytest.raises(error, match=match) as e:
            open_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"{peak >> 20} MiB allocated before refusing"
    assert "\n" not in str(e.value) and str(path) in str(e.value)
    return str(e.value)


@pytest.mark.parametrize("key,value,match", [
    ("llama.block_count", (2**32 - 1, V.UINT32), "block_count is 4294967295, but must be an integer from 1"),
    ("llama.block_count", (2**31 - 1, V.UINT32), "2147483647 layers, but the file's 12 tensors hold at most 1"),
    ("llama.block_count", (0, V.UINT32), "block_count is 0"),
    ("llama.block_count", ("12", V.STRING), "block_count is '12', but must be an integer"),
    ("llama.embedding_length", (2**32 - 1, V.UINT32), "embedding_length is 4294967295"),
    ("llama.embedding_length", (2**31 - 1, V.UINT32), "token_embd.weight"),
    ("llama.embedding_length", (-16, V.INT32), "embedding_length is -16"),
    ("llama.feed_forward_length", (2**63, V.UINT64), "feed_forward_length"),
    ("llama.vocab_size", (2**31 - 1, V.UINT32), "token_embd.weight"),
    ("llama.attention.head_count", (0, V.UINT32), "head_count is 0"),
    ("llama.attention.head_count", (3, V.UINT32), "attn_q.weight"),  # 3 heads of 8 for a width-16 q
    ("llama.attention.head_count_kv", (0, V.UINT32), "head_count_kv is 0"),
    ("llama.attention.head_count_kv", (3, V.UINT32), "cannot be shared by 3"),
    ("llama.attention.key_length", (7, V.UINT32), "odd"),
    ("llama.context_length", (-1, V.INT32), "context_length is -1"),
    ("llama.context_length", ([4096, 4096], V.ARRAY, V.UINT32), "context_length is array"),
    ("llama.rope.freq_base", (math.nan, V.FLOAT32), "freq_base is nan"),
    ("llama.attention.layer_norm_rms_epsilon", (-1.0, V.FLOAT32), "layer_norm_rms_epsilon"),
    ("tokenizer.ggml.bos_token_id", ("1", V.STRING), "bos_token_id"),
])
def test_gguf_metadata(small_models, tmp_path, key, value, match):
    refused(rewrite_gguf(small_models.gguf, tmp_path / "m.gguf", {key: value}), match)


def test_gguf_head_count_that_does_not_divide_the_width(small_models, tmp_path):
    path = rewrite_gguf(small_models.gguf, tmp_path / "m.gguf",
                        {"llama.attention.head_count": (3, V.UINT32), "llama.attention.key_length": None})
    refused(path, "16 does not split into 3 heads")


def test_gguf_rope_scaling_type_not_supported(small_models, tmp_path):
    path = rewrite_gguf(small_models.gguf, tmp_path / "m.gguf", {"llama.rope.scaling.type": ("longrope", V.STRING),
                                                                "llama.rope.scaling.factor": (4.0, V.FLOAT32)})
    refused(path, "rope_scaling type 'longrope' is not supported", UnsupportedModelError)


@pytest.fixture()
def folder(small_models, tmp_path):
    return shutil.copytree(small_models.hf, tmp_path / "model")


def write_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("changes,match", [
    ({"num_hidden_layers": 2**32 - 1}, "num_hidden_layers is 4294967295"),
    ({"num_hidden_layers": 2**31 - 1}, "2147483647 layers"),
    ({"num_hidden_layers": 0}, "num_hidden_layers is 0"),
    ({"hidden_size": "16"}, "hidden_size is '16', but must be an integer"),
    ({"hidden_size": 2**31 - 1, "head_dim": 8}, "model.embed_tokens.weight"),
    ({"vocab_size": -5}, "vocab_size is -5"),
    ({"intermediate_size": 1e300}, "intermediate_size"),
    ({"num_attention_heads": 0}, "num_attention_heads is 0"),
    ({"num_attention_heads": 3, "head_dim": None}, "16 does not split into 3"),
    ({"num_key_value_heads": 3}, "cannot be shared by 3"),
    ({"max_position_embeddings": -1}, "max_position_embeddings is -1"),
    ({"rms_norm_eps": "1e-5"}, "rms_norm_eps"),
    ({"rope_theta": float("inf")}, "rope_theta"),
    ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0}},
     "low_freq_factor must be below"),
    ({"rope_scaling": {"rope_type": "linear", "factor": "2"}}, "rope_scaling.factor"),
    ({"rope_scaling": [1, 2]}, "rope_scaling is"),
    ({"tie_word_embeddings": "false"}, "tie_word_embeddings"),
    ({"eos_token_id": [1, "2"]}, "eos_token_id"),
    ({"architectures": "LlamaForCausalLM"}, "architectures is"),
])
def test_config_values(folder, changes, match):
    refused(write_config(folder, **changes), match)


def test_config_activation_not_supported(folder):
    refused(write_config(folder, hidden_act="relu6"), "activation 'relu6' is not supported", UnsupportedModelError)


@pytest.mark.parametrize("text", ["[]", "[{\"hidden_size\": 16}]", "\"LlamaForCausalLM\"", "null"])
def test_config_that_is_not_an_object(folder, text):
    (folder / "config.json").write_text(text)
    refused(folder, "must hold a JSON object")


def test_config_nested_too_deeply(folder):
    (folder / "config.json").write_text("[" * 200_000 + "]" * 200_000)
    refused(folder, "not valid JSON")


def test_shard_names_in_the_index_stay_in_the_folder(folder):
    index = {"metadata": {}, "weight_map": {"model.norm.weight": "../../../etc/passwd"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelFileError, match="not a file name in the model folder"):
        load_model_source(folder)


def test_tokenizer_larger_than_the_embedding(small_models, tmp_path):
    """A token id past the embedding would fail inside a batch; the load refuses it instead."""
    reader = gguf.GGUFReader(small_models.gguf)
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    path = rewrite_gguf(small_models.gguf, tmp_path / "m.gguf", {
        "tokenizer.ggml.tokens": (tokens + ["extra"], V.ARRAY, V.STRING),
        "tokenizer.ggml.token_type": (types + [1], V.ARRAY, V.INT32),
    })
    refused(path, f"the tokenizer has {len(tokens) + 1} tokens but the model only {len(tokens)} embeddings")

"""Every bad model path fails fast with a typed error that names the file."""
import json
import shutil

import gguf
import numpy as np
import pytest

from corral.errors import ModelFileError, UnsupportedModelError
from corral.loader import load_model_source


def test_missing_path(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        load_model_source(tmp_path / "nope.gguf")


def test_not_a_gguf_file(tmp_path):
    p = tmp_path / "model.bin"
    p.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(ModelFileError, match="not a GGUF") as e:
        load_model_source(p)
    assert e.value.path == str(p)


@pytest.mark.parametrize("fraction", [0.5, 0.02, 0.9])
def test_truncated_gguf(tiny_models, tmp_path, fraction):
    data = tiny_models("qwen2", "Q4_K").read_bytes()
    p = tmp_path / "cut.gguf"
    p.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelFileError, match=str(p)):
        source = load_model_source(p)
        list(source.iter_weights())


def test_folder_without_config(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelFileError, match="no config.json"):
        load_model_source(tmp_path)


def test_config_that_is_not_json(tiny_models, tmp_path):
    folder = shutil.copytree(tiny_models("llama", "hf"), tmp_path / "m")
    (folder / "config.json").write_text("{oops")
    with pytest.raises(ModelFileError, match="config.json.*JSON"):
        load_model_source(folder)


def test_missing_shard(tiny_models, tmp_path):
    folder = shutil.copytree(tiny_models("llama", "hf"), tmp_path / "m")
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    index = {"metadata": {}, "weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors",
                                            "lm_head.weight": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelFileError, match="model-00002-of-00002.safetensors.*missing"):
        load_model_source(folder)


def test_hf_tensor_missing(tiny_models, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = shutil.copytree(tiny_models("qwen3", "hf"), tmp_path / "m")
    weights = load_file(folder / "model.safetensors")
    del weights["model.layers.1.self_attn.k_norm.weight"]
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(ModelFileError, match="model.layers.1.self_attn.k_norm.weight"):
        load_model_source(folder)


def write_gguf(path, arch="llama", tensors=None, n_layers=1):
    """A GGUF with llama-style metadata and the given {name: (array, raw_dtype or None)}."""
    w = gguf.GGUFWriter(str(path), arch)
    w.add_embedding_length(32)
    w.add_block_count(n_layers)
    w.add_feed_forward_length(64)
    w.add_head_count(2)
    w.add_context_length(128)
    for name, (arr, raw_dtype) in (tensors or {}).items():
        w.add_tensor(name, arr, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def full_llama_tensors():
    f = lambda *s: (np.ones(s, np.float32), None)
    t = {"token_embd.weight": f(10, 32), "output_norm.weight": f(32), "output.weight": f(10, 32)}
    for stem, shape in [("attn_q", (32, 32)), ("attn_k", (32, 32)), ("attn_v", (32, 32)), ("attn_output", (32, 32)),
                        ("ffn_gate", (64, 32)), ("ffn_up", (64, 32)), ("ffn_down", (32, 64)),
                        ("attn_norm", (32,)), ("ffn_norm", (32,))]:
        t[f"blk.0.{stem}.weight"] = f(*shape)
    return t


def test_minimal_valid_gguf_loads(tmp_path):
    source = load_model_source(write_gguf(tmp_path / "ok.gguf", tensors=full_llama_tensors()))
    assert source.config.vocab_size == 10 and source.config.head_dim == 16
    assert len(list(source.iter_weights())) == 12


def test_unsupported_architecture_lists_supported(tmp_path):
    p = write_gguf(tmp_path / "gpt2.gguf", arch="gpt2", tensors=full_llama_tensors())
    with pytest.raises(UnsupportedModelError, match="'gpt2'.*gemma2, gemma3, llama, phi3, qwen2, qwen2moe, qwen3, qwen3moe"):
        load_model_source(p)


def test_gguf_tensor_missing(tmp_path):
    tensors = full_llama_tensors()
    del tensors["blk.0.ffn_up.weight"]
    with pytest.raises(ModelFileError, match="blk.0.ffn_up.weight"):
        load_model_source(write_gguf(tmp_path / "m.gguf", tensors=tensors))


def test_unsupported_tensor_type(tmp_path):
    tensors = full_llama_tensors()
    # MXFP4: 32 values in 17 bytes; a type corral does not decode
    tensors["blk.0.attn_v.weight"] = (np.zeros((32, 8 * 17), np.uint8), gguf.GGMLQuantizationType.MXFP4)
    with pytest.raises(UnsupportedModelError, match="blk.0.attn_v.weight.*MXFP4"):
        load_model_source(write_gguf(tmp_path / "m.gguf", tensors=tensors))


def test_missing_metadata_key(tmp_path):
    w = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "llama")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ModelFileError, match="llama.embedding_length"):
        load_model_source(tmp_path / "m.gguf")

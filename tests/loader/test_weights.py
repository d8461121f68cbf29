"""Weights read from GGUF (in HF names) equal the HF folder's weights they were written from."""
import gguf
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from corral.loader import load_model_source
from corral.loader.dequant import dequantize
from corral.loader.gguf_names import hf_to_gguf
from corral.loader.quantized import QuantizedWeight
from fixtures.tiny_models import GGUF_ARCHS, HF_ONLY_ARCHS

QUANTIZED = ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q4_K_M")


def hf_weights(folder):
    return load_file(str(folder / "model.safetensors"))


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute, written out here as the reference."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


DENSE_FORMATS = [("hf", 0), ("F32", 0), ("F16", 1e-3), ("BF16", 8e-3)]


@pytest.mark.parametrize("arch,fmt,tol", [(a, f, t) for a in GGUF_ARCHS for f, t in DENSE_FORMATS]
                         + [(a, "hf", 0) for a in HF_ONLY_ARCHS])
def test_dense_weights_match_hf(tiny_models, arch, fmt, tol):
    want = hf_weights(tiny_models(arch, "hf"))
    source = load_model_source(tiny_models(arch, fmt))
    got = dict(source.iter_weights())
    assert set(got) == set(want)
    for name, w in got.items():
        assert w.shape == want[name].shape, name
        # Gemma's GGUF norms hold 1 + w (llama.cpp's converter adds 1), rounded to float32 there.
        atol = 1.2e-7 if fmt != "hf" and arch.startswith("gemma") and name.endswith("norm.weight") else tol * 0.1
        torch.testing.assert_close(w.float(), want[name], rtol=tol, atol=atol, msg=name)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
@pytest.mark.parametrize("weight_type", QUANTIZED)
def test_quantized_weights_match_reference_dequantization(tiny_models, arch, weight_type):
    """Each weight equals gguf-py's dequantization of the same bytes, back in HF row order, and
    is close to the HF weight it was quantized from."""
    path = tiny_models(arch, weight_type)
    source = load_model_source(path)
    cfg = source.config
    reader = gguf.GGUFReader(path)
    raw = {t.name: t for t in reader.tensors}
    want = hf_weights(tiny_models(arch, "hf"))
    for name, w in source.iter_weights():
        t = raw[hf_to_gguf(name)]
        ref = gguf.quants.dequantize(t.data, t.tensor_type).reshape(w.shape)
        if arch == "llama" and ("q_proj" in name or "k_proj" in name):
            heads = cfg.num_attention_heads if "q_proj" in name else cfg.num_key_value_heads
            ref = llama_cpp_permute(want[name].numpy(), heads)  # only to recover the order below
            ref = gguf.quants.dequantize(t.data, t.tensor_type).reshape(w.shape)
            order = np.argsort(llama_cpp_permute(np.arange(w.shape[0]), heads))
            ref = ref[order]
        np.testing.assert_allclose(w.numpy(), ref, rtol=1e-6, atol=1e-7, err_msg=name)
        rel = (w - want[name]).norm() / want[name].norm()
        assert rel < 0.5, f"{name}: relative error {rel:.3f} vs HF weight"


def test_llama_qk_rows_are_permuted_in_file_and_restored(tiny_models):
    hf = hf_weights(tiny_models("llama", "hf"))
    reader = gguf.GGUFReader(tiny_models("llama", "F32"))
    raw = {t.name: np.asarray(t.data) for t in reader.tensors}
    q, k = hf["model.layers.1.self_attn.q_proj.weight"].numpy(), hf["model.layers.1.self_attn.k_proj.weight"].numpy()
    np.testing.assert_array_equal(raw["blk.1.attn_q.weight"], llama_cpp_permute(q, 4))
    np.testing.assert_array_equal(raw["blk.1.attn_k.weight"], llama_cpp_permute(k, 2))
    assert not np.array_equal(raw["blk.1.attn_q.weight"], q)
    got = dict(load_model_source(tiny_models("llama", "F32")).iter_weights())
    assert torch.equal(got["model.layers.1.self_attn.q_proj.weight"], hf["model.layers.1.self_attn.q_proj.weight"])


def test_qwen_qk_rows_are_not_permuted(tiny_models):
    hf = hf_weights(tiny_models("qwen2", "hf"))
    reader = gguf.GGUFReader(tiny_models("qwen2", "F32"))
    raw = {t.name: np.asarray(t.data) for t in reader.tensors}
    np.testing.assert_array_equal(raw["blk.0.attn_q.weight"], hf["model.layers.0.self_attn.q_proj.weight"].numpy())
    np.testing.assert_array_equal(raw["blk.0.attn_q.bias"], hf["model.layers.0.self_attn.q_proj.bias"].numpy())


@pytest.mark.parametrize("weight_type", ["Q4_0", "Q6_K", "Q4_K_M"])
def test_keep_quantized_yields_file_blocks_with_hf_row_order(tiny_models, weight_type):
    """Blocks are views of the file (no copy); permuted Q/K rows come with the order to HF rows."""
    source = load_model_source(tiny_models("llama", weight_type))
    dense = dict(source.iter_weights())
    kept = dict(source.iter_weights(keep_quantized=True))
    assert set(kept) == set(dense)
    n_quantized = 0
    for name, w in kept.items():
        if isinstance(w, QuantizedWeight):
            n_quantized += 1
            assert w.data.dtype == np.uint8 and w.data.shape[0] == w.shape[0] and w.shape == tuple(dense[name].shape)
            assert np.shares_memory(w.data, source.gguf.tensors[hf_to_gguf(name)].data), name
            assert (w.row_order is not None) == ("q_proj" in name or "k_proj" in name), name
            assert torch.equal(w.dequantize(), dense[name]), name
            file_rows = dequantize(w.type_name, w.data, w.shape)
            if w.row_order is not None:
                file_rows = file_rows[torch.from_numpy(w.row_order)]
            assert torch.equal(file_rows, dense[name]), name
        else:
            assert w.dim() == 1 and torch.equal(w, dense[name]), name
    assert n_quantized == 2 * 7 + 2  # 7 matrices per layer, embedding, output


def test_q4_k_m_mixes_types_like_llama_cpp(tiny_models):
    source = load_model_source(tiny_models("llama", "Q4_K_M"))
    types = {t.name: t.type_name for t in source.gguf.tensors.values()}
    assert types["output.weight"] == "Q6_K"
    assert types["blk.0.attn_q.weight"] == "Q4_K"
    assert types["blk.0.ffn_down.weight"] == "Q4_K"
    assert types["blk.1.ffn_down.weight"] == "Q6_K"  # last eighth of the layers gets more bits
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert source.gguf.get("general.file_type") == 15


def test_sharded_safetensors(tiny_models, tmp_path):
    import shutil

    import transformers

    src = tiny_models("qwen2", "hf")
    model = transformers.AutoModelForCausalLM.from_pretrained(src)
    model.save_pretrained(tmp_path, max_shard_size="300KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    shutil.copy(src / "tokenizer.json", tmp_path)
    want = hf_weights(src)
    got = dict(load_model_source(tmp_path).iter_weights())
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) for k in want)

"""The llama.cpp mixes, per tensor: more bits for attn_v and ffn_down (the stacked experts too)
in the first and last eighth of the layers and every third between; MoE experts exported whole."""
import pytest

from corral.loader.gguf_file import GGUFFile
from corral.loader.quant_mix import tensor_type

SHAPE = (4096, 2048)


@pytest.mark.parametrize("name", ["blk.{}.ffn_down.weight", "blk.{}.ffn_down_exps.weight"])
def test_q4_k_m_gives_ffn_down_more_bits_in_llama_cpp_layers(name):
    # 8 layers: more bits in layer 0, layer 7, and layers 3 and 6 ((layer - 1) % 3 == 2)
    types = [tensor_type(name.format(i), SHAPE, "Q4_K_M", 8) for i in range(8)]
    assert types == ["Q6_K", "Q4_K", "Q4_K", "Q6_K", "Q4_K", "Q4_K", "Q6_K", "Q6_K"]
    assert tensor_type(name.format(0), SHAPE, "Q4_K_S", 8) == "Q5_K"


def test_other_expert_tensors_keep_the_base_type():
    for part in ("ffn_gate_exps", "ffn_up_exps"):
        assert tensor_type(f"blk.0.{part}.weight", SHAPE, "Q4_K_M", 8) == "Q4_K"
    assert tensor_type("blk.0.attn_v.weight", SHAPE, "Q4_K_S", 8) == "Q4_K"
    assert tensor_type("blk.0.ffn_gate_inp.weight", (128, 2048), "Q4_K_M", 8) == "F32"


def test_moe_export_writes_each_layer_of_experts_as_one_tensor(tiny_models):
    gf = GGUFFile(tiny_models("qwen3_moe", "Q4_K_M"))
    experts = {name: t for name, t in gf.tensors.items() if "_exps" in name}
    assert sorted(experts) == [f"blk.{i}.ffn_{p}_exps.weight" for i in range(2) for p in ("down", "gate", "up")]
    assert all(t.shape[0] == 8 for t in experts.values())  # (experts, rows, cols) in numpy order
    # 2 layers: only the last is a "more bits" layer
    assert [experts[f"blk.{i}.ffn_down_exps.weight"].type_name for i in range(2)] == ["Q4_K", "Q6_K"]

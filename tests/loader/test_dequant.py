"""Our dequantizer against gguf-py's (an independent reference) on random valid blocks."""
import gguf
import numpy as np
import pytest
import torch
from fixtures.ggml_blocks import F16_FIELDS, random_blocks

from corral.errors import ModelFileError, UnsupportedModelError
from corral.loader.dequant import dequantize
from corral.loader.ggml_types import BLOCK_GEOMETRY, QUANTIZED_TYPES


def test_every_quantized_type_has_random_block_maker():
    assert set(F16_FIELDS) == set(QUANTIZED_TYPES)


@pytest.mark.parametrize("type_name", QUANTIZED_TYPES)
@pytest.mark.parametrize("rows", [1, 7])
def test_matches_gguf_reference(type_name, rows):
    block_size, _ = BLOCK_GEOMETRY[type_name]
    raw = random_blocks(type_name, rows, 3, seed=rows)
    expected = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[type_name])
    assert np.isfinite(expected).all()
    got = dequantize(type_name, raw, (rows, 3 * block_size))
    assert got.dtype == torch.float32 and got.shape == (rows, 3 * block_size)
    np.testing.assert_array_equal(got.numpy(), expected)


@pytest.mark.parametrize("type_name", ["F32", "F16", "BF16"])
def test_dense_types(type_name):
    x = torch.randn(5, 6)
    if type_name == "F32":
        raw = x.numpy()
    elif type_name == "F16":
        raw = x.half().numpy()
    else:
        raw = x.bfloat16().view(torch.int16).numpy()
    got = dequantize(type_name, raw.view(np.uint8), (5, 6))
    want = {"F32": x, "F16": x.half().float(), "BF16": x.bfloat16().float()}[type_name]
    assert torch.equal(got, want)


def test_f32_writable_input_is_not_copied():
    raw = np.arange(6, dtype=np.float32)
    got = dequantize("F32", raw, (2, 3))
    got[0, 0] = 42.0
    assert raw[0] == 42.0


def test_unsupported_type_names_tensor_and_type():
    with pytest.raises(UnsupportedModelError, match="blk.0.attn_q.weight.*MXFP4"):
        dequantize("MXFP4", np.zeros(17, np.uint8), (32,), name="blk.0.attn_q.weight")


def test_wrong_byte_count_is_a_file_error():
    with pytest.raises(ModelFileError, match="bytes"):
        dequantize("Q8_0", np.zeros(33, np.uint8), (32,), name="w")


def test_row_not_multiple_of_block_is_a_file_error():
    with pytest.raises(ModelFileError, match="block size"):
        dequantize("Q4_0", np.zeros(18, np.uint8), (16,), name="w")

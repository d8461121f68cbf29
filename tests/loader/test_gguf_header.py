"""corral's GGUF parser reads what gguf-py's GGUFReader reads, and refuses broken files clearly."""
import struct

import gguf
import numpy as np
import pytest

from corral.errors import ModelFileError, UnsupportedModelError
from corral.loader.ggml_types import BLOCK_GEOMETRY, GGML_TYPE_IDS
from corral.loader.gguf_file import GGUFFile
from fixtures.tiny_models import GGUF_TYPES


def assert_same_as_gguf_py(path):
    """Metadata values, tensor index and tensor data (dtype, shape, bytes) equal GGUFReader's."""
    gf = GGUFFile(path)
    reader = gguf.GGUFReader(path, "c")
    fields = {k: f for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    assert list(gf.metadata) == list(fields)
    for key, field in fields.items():
        got, want = gf.metadata[key], field.contents()
        if isinstance(got, np.ndarray):  # numeric arrays are compact; gguf-py gives lists
            assert got.ndim == 1 and got.dtype == gguf.GGUFReader.gguf_scalar_to_np[field.types[-1]], key
            got = got.tolist()
        assert got == want and type(got) is type(want), key
        if isinstance(got, list) and got:
            assert type(got[0]) is type(want[0]), key
    assert list(gf.tensors) == [t.name for t in reader.tensors]
    for t in reader.tensors:
        mine = gf.tensors[t.name]
        assert (mine.type_name, mine.type_id) == (t.tensor_type.name, int(t.tensor_type)), t.name
        assert mine.shape == tuple(reversed(t.shape.tolist())), t.name
        assert mine.n_bytes == t.n_bytes, t.name
        assert mine.data.dtype == t.data.dtype and mine.data.shape == t.data.shape, t.name
        assert mine.data.tobytes() == t.data.tobytes(), t.name
    return gf


@pytest.mark.parametrize("arch,fmt", [(a, f) for a in ("llama", "qwen2") for f in GGUF_TYPES]
                         + [("llama31", "F16"), ("qwen3", "Q4_K_M")])
def test_tiny_models_read_as_gguf_py_reads_them(tiny_models, arch, fmt):
    gf = assert_same_as_gguf_py(tiny_models(arch, fmt))
    assert isinstance(gf.metadata["tokenizer.ggml.tokens"], list)
    assert gf.metadata["tokenizer.ggml.token_type"].dtype == np.int32


def test_every_value_type_and_typed_tensor(tmp_path):
    path = tmp_path / "all.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    V = gguf.GGUFValueType
    for i, (vtype, value) in enumerate([(V.UINT8, 200), (V.INT8, -100), (V.UINT16, 60000), (V.INT16, -30000),
                                        (V.UINT32, 4_000_000_000), (V.INT32, -2_000_000_000), (V.FLOAT32, 0.1),
                                        (V.UINT64, 2**63 + 5), (V.INT64, -(2**62)), (V.FLOAT64, 1e-300),
                                        (V.BOOL, True), (V.STRING, "héllo ▁ Ġ")]):
        w.add_key_value(f"scalar.{i}", value, vtype)
        if vtype != V.STRING:
            values = [value, value] if vtype == V.BOOL else [value, 0, value]
            w.add_key_value(f"array.{i}", values, V.ARRAY, sub_type=vtype)
    w.add_array("strings", ["a", "", "Ġb c", "日本"])
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float16, np.float64, np.int8, np.int16, np.int32, np.int64):
        w.add_tensor(f"t.{np.dtype(dtype).name}", (rng.standard_normal((3, 5)) * 50).astype(dtype))
    w.add_tensor("t.bf16", rng.integers(0, 255, (3, 10), dtype=np.uint8),
                 raw_dtype=gguf.GGMLQuantizationType.BF16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    gf = assert_same_as_gguf_py(path)
    assert gf.metadata["scalar.6"] == float(np.float32(0.1))
    assert gf.metadata["array.10"].dtype == np.bool_
    assert gf.tensors["t.int16"].data.dtype == np.int16 and gf.tensors["t.bf16"].data.shape == (3, 10)


def test_nested_arrays_stay_nested(tmp_path):
    path = tmp_path / "nested.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_array("ints", [[1, 2], [3, 4, 5]])
    w.add_array("strs", [["a", "b"], ["c"]])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    gf = GGUFFile(path)
    assert [a.tolist() for a in gf.metadata["ints"]] == [[1, 2], [3, 4, 5]]
    assert gf.metadata["strs"] == [["a", "b"], ["c"]]


def test_type_table_matches_gguf_py():
    assert {i: name for i, (name, *_) in GGML_TYPE_IDS.items()} == {t.value: t.name for t in gguf.GGMLQuantizationType}
    for t in gguf.GGMLQuantizationType:
        assert GGML_TYPE_IDS[t.value][1:] == gguf.GGML_QUANT_SIZES[t]
    for name, geometry in BLOCK_GEOMETRY.items():
        assert (name, *geometry) in GGML_TYPE_IDS.values()


# -- broken files, built byte by byte ---------------------------------------------------------

def s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def u32(x):
    return struct.pack("<I", x)


ARCH = (b"general.architecture", 8, s("llama"))


def gguf_bytes(kvs=(ARCH,), tensors=(("w", (4,), 0, 0),), data=bytes(16), version=3, alignment=32,
               n_tensors=None, n_kvs=None):
    """kvs: (key, value type, encoded value); tensors: (name, dims innermost first, type id, offset)."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                                len(kvs) if n_kvs is None else n_kvs)
    for key, vtype, payload in kvs:
        out += s(key) + u32(vtype) + payload
    for name, dims, type_id, offset in tensors:
        out += s(name) + u32(len(dims)) + struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", type_id, offset)
    out += bytes(-len(out) % alignment)
    return out + data


def open_bytes(tmp_path, raw: bytes) -> GGUFFile:
    path = tmp_path / "m.gguf"
    path.write_bytes(raw)
    return GGUFFile(path)


def test_hand_built_file_reads(tmp_path):
    data = np.arange(4, dtype=np.float32).tobytes()
    gf = open_bytes(tmp_path, gguf_bytes(data=data))
    assert gf.architecture == "llama" and gf.version == 3 and gf.data_offset % 32 == 0
    assert gf.tensors["w"].data.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_alignment_from_metadata(tmp_path):
    kvs = (ARCH, (b"general.alignment", 4, u32(64)))
    gf = open_bytes(tmp_path, gguf_bytes(kvs, alignment=64, data=np.ones(4, np.float32).tobytes()))
    assert gf.alignment == 64 and gf.data_offset % 64 == 0
    assert gf.tensors["w"].data.tolist() == [1.0] * 4


def test_every_truncation_is_a_model_file_error(tmp_path):
    raw = gguf_bytes(kvs=(ARCH, (b"tokens", 9, u32(8) + struct.pack("<Q", 2) + s("a") + s("bc")),
                          (b"scores", 9, u32(6) + struct.pack("<Q", 2) + bytes(8))))
    for cut in range(len(raw)):
        with pytest.raises(ModelFileError):
            open_bytes(tmp_path, raw[:cut])
    open_bytes(tmp_path, raw)


@pytest.mark.parametrize("raw,message", [
    (b"GGML" + bytes(40), "not a GGUF file"),
    (gguf_bytes(version=1), "version 1 is not supported"),
    (gguf_bytes(version=4), "version 4 is not supported"),
    (gguf_bytes(version=3 << 24), "big-endian"),
    (gguf_bytes(kvs=((b"k", 8, struct.pack("<Q", 1 << 40) + b"abc"),)), "past the end of the file"),
    (gguf_bytes(kvs=((b"k", 9, u32(4) + struct.pack("<Q", 1 << 40)),)), "past the end of the file"),
    (gguf_bytes(kvs=((b"k", 9, u32(8) + struct.pack("<Q", 1 << 40) + s("a")),)), "past the end of the file"),
    (gguf_bytes(n_kvs=1 << 40, tensors=(), data=b"", alignment=1), "a metadata key at byte .* past the end"),
    (gguf_bytes(n_tensors=1 << 40, data=b"", alignment=1), "a tensor name at byte .* past the end"),
    (gguf_bytes(kvs=((b"k", 13, bytes(8)),)), "'k' has unknown value type 13"),
    (gguf_bytes(kvs=((b"k", 9, u32(13) + struct.pack("<Q", 1)),)), "array of unknown value type 13"),
    (gguf_bytes(kvs=((b"k\xff", 4, u32(1)),)), "not valid UTF-8"),
    (gguf_bytes(kvs=((b"k", 9, u32(8) + struct.pack("<Q", 1) + s(b"\xc3")),)), "not valid UTF-8"),
    (gguf_bytes(kvs=(ARCH, ARCH)), "appears twice"),
    (gguf_bytes(kvs=((b"k", 9, (u32(9) + struct.pack("<Q", 1)) * 40 + u32(4) + struct.pack("<Q", 0)),)),
     "nests arrays more than 16 deep"),
    (gguf_bytes(kvs=((b"general.alignment", 4, u32(24)),)), "not a power of two"),
    (gguf_bytes(kvs=((b"general.alignment", 10, struct.pack("<Q", 32)),)), "must be a uint32"),
    (gguf_bytes(tensors=(("w", (4,), 0, 0), ("w", (4,), 0, 0)), data=bytes(32)), "tensor 'w' appears twice"),
    (gguf_bytes(tensors=(("w", (1, 1, 1, 1, 4), 0, 0),)), "5 dimensions"),
    (gguf_bytes(tensors=(("w", (1000,), 0, 0),)), "tensor 'w' .* runs past the end of the file"),
    (gguf_bytes(tensors=(("w", (4,), 0, 1 << 20),)), "tensor 'w' .* runs past the end of the file"),
    (gguf_bytes(tensors=(("w", (30,), 2, 0),), data=bytes(64)), "not a whole number of Q4_0 blocks"),
    (gguf_bytes(tensors=(("w", (0, (1 << 64) - 1), 0, 0),)), "tensor 'w' has an empty dimension"),
    (gguf_bytes(kvs=((b"k", 9, u32(9) + struct.pack("<Q", 1 << 40) + (u32(4) + struct.pack("<Q", 0)) * 4),)),
     "array of 1099511627776 arrays"),
])
def test_broken_files(tmp_path, raw, message):
    with pytest.raises(ModelFileError, match=message) as e:
        open_bytes(tmp_path, raw)
    assert e.value.path == str(tmp_path / "m.gguf")


def test_unknown_tensor_type_is_unsupported(tmp_path):
    with pytest.raises(UnsupportedModelError, match="type id 4.*supported: F32"):
        open_bytes(tmp_path, gguf_bytes(tensors=(("w", (4,), 4, 0),)))


def test_types_corral_cannot_decode_are_still_indexed(tmp_path):
    gf = open_bytes(tmp_path, gguf_bytes(tensors=(("w", (32, 2), 20, 0),), data=bytes(36)))
    t = gf.tensors["w"]
    assert (t.type_name, t.shape, t.data.shape, t.n_bytes) == ("IQ4_NL", (2, 32), (2, 18), 36)


def test_long_string_arrays_are_decoded_on_access(tmp_path):
    from corral.loader.gguf_header import LAZY_STRINGS

    words = [f"w{i}" for i in range(LAZY_STRINGS)]
    payload = u32(8) + struct.pack("<Q", len(words)) + b"".join(s(w) for w in words)
    gf = open_bytes(tmp_path, gguf_bytes(kvs=(ARCH, (b"words", 9, payload))))
    assert "words" in gf.metadata and gf.metadata["words"] == words
    assert gf.metadata["words"] is not gf.metadata["words"]  # a new list for each caller

    bad = payload[:-2] + b"\xff9"  # the last word is no longer UTF-8: found when read
    gf = open_bytes(tmp_path, gguf_bytes(kvs=(ARCH, (b"words", 9, bad))))
    with pytest.raises(ModelFileError, match=r"metadata key 'words': string 1023 .* not valid UTF-8"):
        gf.metadata["words"]
    with pytest.raises(ModelFileError, match="past the end of the file"):
        open_bytes(tmp_path, gguf_bytes(kvs=(ARCH, (b"words", 9, payload[:-1])), tensors=(), data=b"", alignment=1))

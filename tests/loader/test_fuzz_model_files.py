"""Fuzzing: a corrupted GGUF file or config.json only ever raises corral's typed errors, soon, and
without allocating more than the file could justify.

Each example copies the small model (tests/fixtures/hostile_models.py), damages it (flipped bits,
a truncation, header numbers replaced by extremes, metadata or config values replaced by wrong types
and extremes) and opens it as the engine does: config, tokenizer, model built, weights loaded.
"""
from __future__ import annotations

import json
import math
import time
import tracemalloc

import gguf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.errors import CorralError
from corral.loader.gguf_file import GGUFFile
from fixtures.hostile_models import open_model, rewrite_gguf

FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
# Opening the small model takes ~30 ms and ~1 MB of Python/numpy memory; these are 100x that.
MAX_SECONDS = 5.0
MAX_TRACED_BYTES = 64 << 20

EXTREME_INTS = [0, 1, 2, 3, 7, 2**15, 2**16 - 1, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1, 2**63, 2**64 - 1]


def opens_or_refuses(path) -> None:
    """Open `path`; anything but success or a CorralError fails the test, as do time and memory
    beyond the bounds."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        open_model(path)
    except CorralError as e:
        assert str(e) and "\n" not in str(e).strip(), "a typed error gets a one-line message"
    finally:
        elapsed = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < MAX_SECONDS, f"opening took {elapsed:.1f} s"
    assert peak < MAX_TRACED_BYTES, f"opening allocated {peak >> 20} MiB"


@pytest.fixture(scope="module", autouse=True)
def no_full_gc_per_load():
    """load_model ends with a full gc.collect() (a third of a second in a test process full of
    objects); the fuzzing opens hundreds of models, so it is skipped here."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("corral.engine.loading.release_free_memory", lambda: None)
        yield


@pytest.fixture(scope="module")
def small_gguf(small_models):
    data = small_models.gguf.read_bytes()
    return data, GGUFFile(small_models.gguf).data_offset


@st.composite
def damaged(draw, data: bytes, header_end: int) -> bytes:
    """`data` with bits flipped, cut short, or a header number overwritten by an extreme."""
    out = bytearray(data)
    kind = draw(st.sampled_from(["flip", "truncate", "u32", "u64"]))
    if kind == "truncate":
        return bytes(out[:draw(st.integers(0, len(out) - 1))])
    if kind == "flip":
        for _ in range(draw(st.integers(1, 4))):
            pos = draw(st.integers(0, header_end - 1))
            out[pos] ^= 1 << draw(st.integers(0, 7))
        return bytes(out)
    width = 4 if kind == "u32" else 8
    pos = draw(st.integers(4, header_end - width))
    value = draw(st.sampled_from(EXTREME_INTS)) % (1 << 8 * width)
    out[pos:pos + width] = value.to_bytes(width, "little")
    return bytes(out)


def test_the_small_model_opens(small_models):
    """The fuzzing below starts from files that are valid."""
    assert open_model(small_models.gguf).config.num_hidden_layers == 1
    assert open_model(small_models.hf).config.hidden_size == 16


@FUZZ
@given(data=st.data())
def test_damaged_gguf_bytes(small_gguf, tmp_path_factory, data):
    original, header_end = small_gguf
    path = tmp_path_factory.getbasetemp() / "damaged.gguf"
    path.write_bytes(data.draw(damaged(original, header_end)))
    opens_or_refuses(path)


V = gguf.GGUFValueType
# (value, type[, item type]) for rewrite_gguf: wrong types, extremes, empty and odd arrays
METADATA_VALUES = st.one_of(
    st.sampled_from(EXTREME_INTS[:10]).map(lambda v: (v, V.UINT32)),
    st.sampled_from(EXTREME_INTS).map(lambda v: (v, V.UINT64)),
    st.sampled_from([-1, -(2**31), -(2**63)]).map(lambda v: (v, V.INT64)),
    st.sampled_from([0.0, -1.0, 1e-30, 1e30, math.nan, math.inf, -math.inf]).map(lambda v: (v, V.FLOAT32)),
    st.sampled_from(["", "abc", "16", "llama", "gpt2", "{{ x }}"]).map(lambda v: (v, V.STRING)),
    st.booleans().map(lambda v: (v, V.BOOL)),
    st.just(([""], V.ARRAY, V.STRING)),
    st.just((["a b", "c"], V.ARRAY, V.STRING)),
    st.just(([1, 2, 3], V.ARRAY, V.INT32)),
    st.just(([0.5, math.nan], V.ARRAY, V.FLOAT32)),
    st.none(),  # the key removed
)


@pytest.fixture(scope="module")
def metadata_keys(small_models):
    keys = [k for k in gguf.GGUFReader(small_models.gguf).fields if not k.startswith("GGUF.")]
    return [k for k in keys if k != "general.architecture"] + ["llama.rope.scaling.type", "llama.rope.scaling.factor",
                                                                "tokenizer.chat_templates", "tokenizer.ggml.scores"]


@FUZZ
@given(data=st.data())
def test_gguf_metadata_of_wrong_types_and_extremes(small_models, metadata_keys, tmp_path_factory, data):
    changes = data.draw(st.dictionaries(st.sampled_from(metadata_keys), METADATA_VALUES, min_size=1, max_size=3))
    path = tmp_path_factory.getbasetemp() / "metadata.gguf"
    rewrite_gguf(small_models.gguf, path, changes)
    opens_or_refuses(path)


JSON_VALUES = st.one_of(
    st.sampled_from([0, -1, 1, 2, 3, 16, 2**31 - 1, 2**32 - 1, 2**63, -(2**63), 10**30]),
    st.sampled_from([0.0, 0.5, 16.0, -1.5, 1e-30, 1e300]),
    st.sampled_from(["", "16", "silu", "llama3", "abc"]),
    st.booleans(), st.none(),
    st.lists(st.integers(-3, 300), max_size=3),
    st.just({"rope_type": "llama3", "factor": 8.0}), st.just({"rope_type": "yarn", "factor": 0}),
    st.just({"type": "linear", "factor": "2"}), st.just({"rope_type": "dynamic"}), st.just({}),
)
CONFIG_KEYS = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps", "rope_theta",
               "rope_scaling", "rope_parameters", "tie_word_embeddings", "attention_bias", "hidden_act",
               "bos_token_id", "eos_token_id", "sliding_window", "torch_dtype", "architectures", "model_type"]


@pytest.fixture(scope="module")
def config_folder(small_models, tmp_path_factory):
    import shutil

    folder = tmp_path_factory.mktemp("config-fuzz") / "model"
    shutil.copytree(small_models.hf, folder)
    return folder, json.loads((small_models.hf / "config.json").read_text())


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(CONFIG_KEYS), JSON_VALUES, min_size=1, max_size=3))
def test_config_values_of_wrong_types_and_extremes(config_folder, changes):
    folder, config = config_folder
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    opens_or_refuses(folder)


@pytest.mark.parametrize("text", ["[]", "[1, 2]", '"config"', "5", "null", "{oops", "\x00\xff", "[" * 100_000])
def test_config_json_that_is_not_an_object(config_folder, text):
    folder, _ = config_folder
    (folder / "config.json").write_text(text, encoding="latin-1")
    opens_or_refuses(folder)

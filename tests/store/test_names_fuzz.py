"""Property-based fuzzing of model names and Modelfiles: any text either parses to a name that
stays inside the store and round-trips, or raises StoreError; nothing else ever escapes."""
from __future__ import annotations

import math
from pathlib import PurePosixPath

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from corral.errors import StoreError
from corral.store.modelfile import parse_modelfile
from corral.store.names import name_from_manifest_relpath, parse_name

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text made mostly of the characters names are built from, so many samples parse.
NAME_ALPHABET = st.sampled_from(list("aZ09._-/:") + ["..", "hf.co/", "huggingface.co/", "\\", " ", "\x00", "\ud800", "é"])
name_like = st.lists(NAME_ALPHABET, max_size=24).map("".join)
any_text = st.one_of(name_like, st.text(max_size=64))


@FUZZ
@given(any_text)
@example("\ud800")
@example("a/../../b")
@example("hf.co/x/y:z")
@example("a" * 97)
def test_parse_name_accepts_safe_names_or_raises_store_error(text):
    try:
        name = parse_name(text)
    except StoreError as e:
        assert e.status == 400 and "model name" in e.message
        return
    rel = name.manifest_relpath()
    assert len(rel.parts) == 4 and not rel.is_absolute()
    assert all(part not in ("", ".", "..") and "/" not in part and "\\" not in part for part in rel.parts)
    assert all(c.isascii() and c.isprintable() for c in str(rel))
    assert parse_name(str(name)) == name
    assert name_from_manifest_relpath(rel) == name


@FUZZ
@given(st.lists(any_text, min_size=0, max_size=6))
def test_manifest_paths_map_back_to_a_name_or_none(parts):
    try:
        rel = PurePosixPath(*parts) if parts else PurePosixPath()
    except (TypeError, ValueError):
        return
    name = name_from_manifest_relpath(rel)
    assert name is None or name.manifest_relpath() == rel


MODELFILE_PIECES = st.sampled_from([
    "FROM ", "PARAMETER ", "SYSTEM ", "TEMPLATE ", "MESSAGE ", "LICENSE ", "ADAPTER ", "user ", "temperature ",
    "stop ", "num_ctx ", '"""', '"', "\\", "\n", "#", " ", "0.5", "x", "1e999", "nan", "-1", "\ud800", "\r\n",
])


@FUZZ
@given(st.one_of(st.lists(MODELFILE_PIECES, max_size=30).map("".join), st.text(max_size=200)))
@example('FROM x\nPARAMETER temperature nan\n')
@example('FROM x\nPARAMETER num_ctx 99999999999999999999999\n')
def test_parse_modelfile_only_raises_store_error(text):
    try:
        modelfile = parse_modelfile(text)
    except StoreError as e:
        assert e.status == 400 and e.message
        return
    assert isinstance(modelfile.from_, str) and modelfile.from_
    for value in modelfile.params.values():
        for item in value if isinstance(value, list) else [value]:
            assert not isinstance(item, float) or math.isfinite(item)
            assert not isinstance(item, int) or -(1 << 63) <= item < (1 << 63)


@pytest.mark.parametrize("line", ["temperature nan", "top_p inf", "min_p -1e999", "num_ctx 99999999999999999999999"])
def test_modelfile_numbers_must_be_finite_and_fit_64_bits(line):
    with pytest.raises(StoreError, match=r"not NaN or infinite|at most 64 bits"):
        parse_modelfile(f"FROM x\nPARAMETER {line}\n")


PATHISH = st.sampled_from(["/", "./", "../", "~", "~nosuchuser/", ".gguf", "a", "b/c", "\x00", "\ud800", "\\", " ",
                           ":", "tmp", "proc/", "dev/", "hf.co/"])


@FUZZ
@given(st.one_of(st.lists(PATHISH, max_size=8).map("".join), st.text(max_size=40)))
@example("~nosuchuser/model.gguf")
@example("a/\x00b")
@example("a/\ud800")
@example("/proc/self/environ")
def test_resolve_and_the_servers_source_only_raise_corral_errors(tmp_path_factory, text):
    from corral.errors import CorralError
    from corral.server.store_source import StoreModelSource
    from corral.store import resolve

    home = tmp_path_factory.getbasetemp() / "empty-store"
    for attempt in (lambda: resolve(text, home=home),
                    lambda: StoreModelSource(home, allow_paths=False).resolve(text)):
        try:
            attempt()
        except CorralError:
            pass
    assert not home.exists()

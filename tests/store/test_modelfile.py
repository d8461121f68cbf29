"""Modelfile parsing: instructions, quoting, typed parameters and errors with line numbers."""
from __future__ import annotations

import pytest

from corral.errors import StoreError
from corral.store import parse_modelfile
from corral.store.modelfile import render_modelfile

TEXT = '''# a comment
FROM hf.co/acme/tiny-GGUF:Q8_0
parameter temperature 0.7
PARAMETER num_ctx 4096
PARAMETER stop "<|im_end|>"
PARAMETER stop <|endoftext|>
PARAMETER penalize_newline false
SYSTEM """You are
terse."""
TEMPLATE "{{ .System }} \\"quoted\\""
MESSAGE user Hello there
MESSAGE assistant """Hi!"""
LICENSE """MIT"""
'''


def test_parse_everything():
    mf = parse_modelfile(TEXT)
    assert mf.from_ == "hf.co/acme/tiny-GGUF:Q8_0"
    assert mf.params == {
        "temperature": 0.7, "num_ctx": 4096, "stop": ["<|im_end|>", "<|endoftext|>"], "penalize_newline": False,
    }
    assert isinstance(mf.params["num_ctx"], int) and isinstance(mf.params["temperature"], float)
    assert mf.system == "You are\nterse."
    assert mf.template == '{{ .System }} "quoted"'
    assert mf.messages == [{"role": "user", "content": "Hello there"}, {"role": "assistant", "content": "Hi!"}]
    assert mf.license == "MIT"


def test_render_round_trips():
    mf = parse_modelfile(TEXT)
    again = parse_modelfile(render_modelfile(mf.from_, mf.params, mf.system, mf.template, mf.messages, mf.license))
    assert again == mf


@pytest.mark.parametrize("text, message", [
    ("FROM x\nFOO bar\n", r"line 2: unknown instruction 'FOO'"),
    ("PARAMETER temperature 1\n", "no FROM"),
    ("FROM x\nADAPTER ./lora.gguf\n", "ADAPTER .* not supported"),
    ("FROM x\nPARAMETER num_ctx lots\n", "num_ctx must be an integer"),
    ("FROM x\nPARAMETER nonsense 1\n", "unknown parameter 'nonsense'"),
    ("FROM x\nPARAMETER use_mmap maybe\n", "true or false"),
    ('FROM x\nSYSTEM """never closed\n', '""" is never closed'),
    ("FROM x\nMESSAGE robot hi\n", "MESSAGE role"),
    ("FROM x\nFROM y\n", "FROM appears twice"),
    ("FROM\n", "FROM needs a value"),
])
def test_errors(text, message):
    with pytest.raises(StoreError, match=message):
        parse_modelfile(text)

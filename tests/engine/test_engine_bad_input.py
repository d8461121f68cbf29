"""Bad files and requests give typed errors naming the file and the problem, never a hang."""
from __future__ import annotations

import json
import shutil

import pytest

from corral import LLM, SamplingParams
from corral.errors import (ChatTemplateError, ContextLengthError, ModelFileError, ModelNotFoundError, TokenizerError,
                           UnsupportedModelError)


def test_truncated_gguf(tiny_models, tmp_path):
    src = tiny_models("qwen2", "Q4_K_M")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(ModelFileError) as err:
        LLM(str(cut))
    assert "cut.gguf" in str(err.value)


def test_not_a_gguf_file(tmp_path):
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"PK\x03\x04 this is a zip file, not a model" * 10)
    with pytest.raises(ModelFileError) as err:
        LLM(str(bogus))
    assert "model.gguf" in str(err.value) and "GGUF" in str(err.value)


def test_unsupported_architecture(tiny_models, tmp_path):
    folder = tmp_path / "weird"
    shutil.copytree(tiny_models("qwen2", "hf"), folder)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["FalconMambaForCausalLM"]
    config["model_type"] = "falcon_mamba"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModelError) as err:
        LLM(str(folder))
    assert "FalconMamba" in str(err.value) or "falcon_mamba" in str(err.value)


def test_missing_tokenizer(tiny_models, tmp_path):
    folder = tmp_path / "notok"
    shutil.copytree(tiny_models("qwen2", "hf"), folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(TokenizerError) as err:
        LLM(str(folder))
    assert "notok" in str(err.value)


def test_unknown_model_name(tmp_path, monkeypatch):
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError):
        LLM("no-such-model:latest")


def test_prompt_longer_than_the_context(make_llm):
    llm = make_llm("llama", "Q8_0", max_model_len=32)
    with pytest.raises(ContextLengthError) as err:
        llm.generate(["word " * 100], SamplingParams(max_tokens=4))
    assert "32" in str(err.value)
    assert llm.generate(["short"], SamplingParams(max_tokens=2, ignore_eos=True))[0].outputs[0].token_ids


def test_chat_without_a_template(tiny_models, tmp_path):
    folder = tmp_path / "notemplate"
    shutil.copytree(tiny_models("qwen2", "hf"), folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    llm = LLM(str(folder), max_model_len=64, kv_cache_memory=4 << 20)
    with pytest.raises(ChatTemplateError):
        llm.chat([{"role": "user", "content": "hi"}])


def test_chat_applies_the_template(make_llm):
    llm = make_llm("qwen2", "hf")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    out = llm.chat(messages, SamplingParams(temperature=0, max_tokens=4, ignore_eos=True))[0]
    assert out.prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert out.prompt.endswith("<|im_start|>assistant\n")

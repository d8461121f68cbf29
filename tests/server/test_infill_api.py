"""Code infill: FIM prompts token for token against each family's documented layout (tokenized by
transformers from the same folder), and /infill and /v1/completions `suffix` on a real server."""
from __future__ import annotations

import json
import shutil

import httpx
import openai
import pytest

from corral.core.sampling_params import SamplingParams
from corral.server.infill import build_infill_prompt
from corral.tokenizer import Tokenizer
from corral.tokenizer.fim import find_fim_tokens

PREFIX = "def add(a, b):\n    "
SUFFIX = "\n    return result\n"
FAMILIES = {
    "qwen25coder": ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"],
    "starcoder2": ["<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<repo_name>", "<file_sep>"],
}


def with_fim_tokens(src, dst, names):
    """A copy of a tiny Qwen2 folder with a family's FIM tokens added as special tokens (and random
    embedding rows for them, so the model can run on them)."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    spec = json.loads((dst / "tokenizer.json").read_text())
    config = json.loads((dst / "config.json").read_text())
    first = config["vocab_size"]
    for i, name in enumerate(names):
        token = {"id": first + i, "content": name, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": False, "special": True}
        spec["added_tokens"].append(token)
    (dst / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False))
    tok_config = json.loads((dst / "tokenizer_config.json").read_text())
    for i, name in enumerate(names):
        tok_config["added_tokens_decoder"][str(first + i)] = {"content": name, "lstrip": False, "normalized": False,
                                                             "rstrip": False, "single_word": False, "special": True}
    (dst / "tokenizer_config.json").write_text(json.dumps(tok_config, ensure_ascii=False))
    weights = load_file(str(dst / "model.safetensors"))
    embed = weights["model.embed_tokens.weight"]
    weights["model.embed_tokens.weight"] = torch.cat([embed, 0.05 * torch.randn(len(names), embed.shape[1],
                                                                                generator=torch.Generator().manual_seed(0))])
    save_file(weights, str(dst / "model.safetensors"), metadata={"format": "pt"})
    config["vocab_size"] = first + len(names)
    (dst / "config.json").write_text(json.dumps(config))
    return dst


@pytest.fixture(scope="module")
def coder(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("coders")
    return {family: with_fim_tokens(tiny_models("qwen2", "hf"), root / family, names) for family, names in FAMILIES.items()}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fim_prompt_matches_the_documented_layout(coder, family):
    import transformers

    pre, suf, mid, _, repo, sep = FAMILIES[family]
    reference = transformers.AutoTokenizer.from_pretrained(str(coder[family]))
    tok = Tokenizer.from_hf_dir(coder[family])
    fim = find_fim_tokens(tok)
    assert (fim.prefix, fim.suffix, fim.middle) == tuple(reference.convert_tokens_to_ids([pre, suf, mid]))
    ids = build_infill_prompt(tok, fim, PREFIX, SUFFIX)
    assert ids == reference(f"{pre}{PREFIX}{suf}{SUFFIX}{mid}", add_special_tokens=False)["input_ids"]
    extra = [{"filename": "util.py", "text": "import math\n"}]
    repo_level = f"{repo}myproject\n{sep}util.py\nimport math\n{sep}filename\n{pre}{PREFIX}{suf}{SUFFIX}{mid}"
    assert build_infill_prompt(tok, fim, PREFIX, SUFFIX, extra=extra) == \
        reference(repo_level, add_special_tokens=False)["input_ids"]
    # llama.cpp's `prompt` goes after the prefix, tokenized on its own
    with_prompt = build_infill_prompt(tok, fim, PREFIX, SUFFIX, prompt="# sum\n")
    assert with_prompt == ids[:ids.index(fim.suffix)] + reference("# sum\n", add_special_tokens=False)["input_ids"] + \
        ids[ids.index(fim.suffix):]


def test_gguf_metadata_ids_win_over_texts(coder, tiny_models):
    tok = Tokenizer.from_hf_dir(coder["qwen25coder"])
    fim = find_fim_tokens(tok, {"tokenizer.ggml.fim_pre_token_id": 5, "tokenizer.ggml.fim_suf_token_id": 6,
                                "tokenizer.ggml.fim_mid_token_id": 7})
    assert (fim.prefix, fim.suffix, fim.middle) == (5, 6, 7) and fim.sep == tok.piece_to_id("<|file_sep|>")
    assert find_fim_tokens(Tokenizer.from_hf_dir(tiny_models("qwen2", "hf"))) is None


@pytest.fixture(scope="module")
def coder_server(coder, empty_store):
    from server_harness import serve_in_thread

    from corral.server.app import create_app
    from corral.server.store_source import StoreModelSource

    url, stop = serve_in_thread(create_app([], source=StoreModelSource(empty_store),
                                           engine_kwargs={"max_model_len": 256, "kv_cache_memory": 8 << 20}))
    yield url
    stop()


def test_infill_and_completion_suffix_generate_from_the_fim_prompt(coder, coder_server):
    from corral import LLM

    model = str(coder["qwen25coder"])
    tok = Tokenizer.from_hf_dir(coder["qwen25coder"])
    ids = build_infill_prompt(tok, find_fim_tokens(tok), PREFIX, SUFFIX)
    expected = LLM(model, max_model_len=256, kv_cache_memory=8 << 20).generate(
        {"prompt_token_ids": ids}, SamplingParams(temperature=0, max_tokens=8, ignore_eos=True))[0].outputs[0].text
    reply = httpx.post(coder_server + "/infill", json={"model": model, "input_prefix": PREFIX, "input_suffix": SUFFIX,
                                                       "n_predict": 8, "temperature": 0, "ignore_eos": True},
                       timeout=120).json()
    assert reply["tokens_evaluated"] == len(ids) and reply["tokens_predicted"] == 8 and reply["stop_type"] == "limit"
    assert reply["content"] == expected
    client = openai.OpenAI(base_url=coder_server + "/v1", api_key="unused", max_retries=0)
    completion = client.completions.create(model=model, prompt=PREFIX, suffix=SUFFIX, max_tokens=8, temperature=0,
                                           extra_body={"ignore_eos": True})
    assert completion.choices[0].text == expected and completion.usage.prompt_tokens == len(ids)


def test_models_without_fim_tokens_get_a_400(coder, coder_server, tiny_models):
    plain = str(tiny_models("qwen2", "hf"))
    reply = httpx.post(coder_server + "/infill", json={"model": plain, "input_prefix": "a", "input_suffix": "b"}, timeout=120)
    assert reply.status_code == 400 and "fill-in-the-middle" in reply.json()["error"]
    reply = httpx.post(coder_server + "/v1/completions", json={"model": plain, "prompt": "a", "suffix": "b"}, timeout=120)
    assert reply.status_code == 400 and "fill-in-the-middle" in reply.json()["error"]["message"]


def test_ollama_generate_with_suffix_uses_the_fim_prompt(coder, coder_server):
    import ollama

    model = str(coder["starcoder2"])
    tok = Tokenizer.from_hf_dir(coder["starcoder2"])
    ids = build_infill_prompt(tok, find_fim_tokens(tok), PREFIX, SUFFIX)
    reply = ollama.Client(host=coder_server).generate(model=model, prompt=PREFIX, suffix=SUFFIX,
                                                      options={"temperature": 0, "num_predict": 4})
    assert reply.prompt_eval_count == len(ids) and reply.eval_count <= 4

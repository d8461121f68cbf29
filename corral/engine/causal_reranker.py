"""Causal-LM rerankers: a decoder whose next-token logits for a "true" and a "false" token, after
a prompt holding the query and the document, give the relevance score.

The ways a folder says so (a GGUF: llama.cpp's `qwen3` rank pooling, see embedding_loader):
- a Qwen3-Reranker (`corral.models.qwen3_reranker.is_qwen3_reranker`): the tokens "yes" and "no",
  the model card's prompt (`TemplatePrompt`), score P(yes) = softmax([yes, no])[0];
- a sentence-transformers CrossEncoder of a causal LM (`modules.json`: Transformer, then LogitScore
  with `true_token_id` and optional `false_token_id`): the pair rendered by the chat template with
  the roles "query" and "document" (`ChatPrompt`), score logit(true) - logit(false) (or logit(true)
  alone) through the CrossEncoder's activation (sigmoid unless it saved Identity);
- a Qwen2/Qwen3ForSequenceClassification with one label (a `score` head: Qwen3-Reranker's
  "seq-cls" conversions, whose row is yes - no), scored as CrossEncoder scores it: on the chat
  template's query/document rendering when the tokenizer has a template that carries them, else
  on the tokenizer's plain pair encoding, except that a Qwen3-Reranker conversion (by name, as
  above) gets its model card's prompt, which its users are told to apply.
The network keeps only the head rows it needs, as `cls.output.weight` ([true, false] or [score]).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from corral.engine.model_kind import logit_score_module
from corral.engine.rerank_prompt import ChatPrompt, TemplatePrompt
from corral.errors import ModelFileError, UnsupportedModelError
from corral.loader.weights import read_config_json
from corral.models.qwen3_reranker import NO, RERANK_TEMPLATE, YES, is_qwen3_reranker

if TYPE_CHECKING:
    import torch

_SIZE_KEYS = {"max_length", "truncation", "padding", "return_tensors", "restore_suffix", "tokenize", "return_dict"}


def head_rows(folder: Path, weights: dict[str, torch.Tensor], token_ids: list[int]) -> torch.Tensor:
    """(len(token_ids), H): the LM head's rows (the token embedding's when they are tied)."""
    head = weights.get("output.weight", weights.get("token_embd.weight"))
    if head is None or any(not 0 <= i < head.shape[0] for i in token_ids):
        raise ModelFileError(folder, f"the reranker's tokens {token_ids} are outside its LM head; is it really a "
                                     "causal-LM reranker?")
    return head[token_ids].clone()


def qwen3_token_ids(folder: Path, tokenizer) -> list[int]:
    ids = [tokenizer.piece_to_id(YES), tokenizer.piece_to_id(NO)]
    if any(i is None for i in ids):
        raise ModelFileError(folder, "a Qwen3-Reranker needs the tokens 'yes' and 'no' in its vocabulary; is it "
                                     "really a reranker?")
    return ids


def logit_score_setup(folder: Path, module: dict, tokenizer, activation: str) -> tuple[list[int], str, ChatPrompt]:
    """(token ids, score activation, prompt) of a sentence-transformers LogitScore CrossEncoder.
    `activation`: the CrossEncoder's ("sigmoid" or "identity")."""
    config = read_config_json(folder / str(module.get("path", "")) / "config.json")
    if not isinstance(config, dict):
        raise ModelFileError(folder, "the LogitScore module's config.json must be an object")
    true_id, false_id = config.get("true_token_id"), config.get("false_token_id")
    if not isinstance(true_id, int) or not (false_id is None or isinstance(false_id, int)):
        raise ModelFileError(folder, "the LogitScore module's config.json needs an integer true_token_id (and "
                                     "false_token_id an integer or null)")
    if tokenizer.chat_template is None:
        raise UnsupportedModelError(folder, "this causal-LM CrossEncoder has no chat template to put a query and a "
                                            "document in; add its chat_template.jinja")
    prompt = _chat_prompt(folder, tokenizer, _chat_kwargs(folder))
    if not prompt.carries_pair():
        raise UnsupportedModelError(folder, "the chat template does not render the 'query' and 'document' roles; "
                                            "give the model a template that does (as sentence-transformers asks)")
    if false_id is None:
        return [true_id], activation, prompt
    return [true_id, false_id], "softmax" if activation == "sigmoid" else "log_odds", prompt


def _chat_prompt(folder: Path, tokenizer, kwargs: dict) -> ChatPrompt:
    variables = {k: v for k, v in kwargs.items() if k not in _SIZE_KEYS | {"add_generation_prompt"}}
    for name in ("bos_token", "eos_token", "unk_token", "pad_token"):
        if getattr(tokenizer, name) is not None:
            variables.setdefault(name, getattr(tokenizer, name))
    return ChatPrompt(tokenizer.chat_template, bool(kwargs.get("add_generation_prompt", False)), variables)


def reranker_head(folder: Path, config: dict, raw: dict, weights: dict, tokenizer, activation: str,
                  name: str = "") -> tuple["torch.Tensor", str, object]:
    """(cls.output.weight, score activation, prompt or None) of a decoder folder taken for a
    reranker; `raw`: its tensors under their HF names, `weights`: under GGUF names; `activation`:
    the CrossEncoder's ("sigmoid" or "identity"). Raises ModelFileError / UnsupportedModelError."""
    module = logit_score_module(folder)
    if module is not None:
        token_ids, activation, prompt = logit_score_setup(folder, module, tokenizer, activation)
        return head_rows(folder, weights, token_ids), activation, prompt
    qwen3_reranker = is_qwen3_reranker(folder, config, name)
    score = raw.get("score.weight")
    if score is None and qwen3_reranker:
        return head_rows(folder, weights, qwen3_token_ids(folder, tokenizer)), "softmax", TemplatePrompt(RERANK_TEMPLATE)
    if score is None or score.dim() != 2 or score.shape[0] != 1:
        raise UnsupportedModelError(folder, "this decoder reranker has no one-label 'score' head, no LogitScore "
                                            "module and is no Qwen3-Reranker; corral cannot tell how to score pairs")
    prompt = None
    if tokenizer.chat_template is not None and "message" in _modalities(folder):
        prompt = _chat_prompt(folder, tokenizer, _chat_kwargs(folder))
        if not prompt.carries_pair():  # a system/user/assistant template: sentence-transformers refuses it
            prompt = None
    if prompt is None and qwen3_reranker:  # a Qwen3-Reranker "seq-cls" conversion: its model card's prompt
        prompt = TemplatePrompt(RERANK_TEMPLATE)
    return score.float(), activation, prompt


def _st_config(folder: Path) -> dict:
    path = folder / "sentence_bert_config.json"
    config = read_config_json(path) if path.is_file() else {}
    return config if isinstance(config, dict) else {}


def _modalities(folder: Path) -> set[str]:
    """What the sentence-transformers Transformer module takes; a folder without the file: "message"
    (sentence-transformers offers it whenever the tokenizer has a chat template)."""
    modality = _st_config(folder).get("modality_config")
    return set(modality) if isinstance(modality, dict) else {"text", "message"}


def _chat_kwargs(folder: Path) -> dict:
    kwargs = (_st_config(folder).get("processing_kwargs") or {}).get("chat_template") or {}
    if not isinstance(kwargs, dict):
        raise ModelFileError(folder / "sentence_bert_config.json", "processing_kwargs.chat_template must be an object")
    return kwargs

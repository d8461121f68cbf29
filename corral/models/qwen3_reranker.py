"""Qwen3-Reranker: a Qwen3 causal LM that scores a (query, document) pair by how likely its next
token is "yes" rather than "no".

The model card (Qwen/Qwen3-Reranker-0.6B) puts each pair in a fixed chat prompt (`RERANK_TEMPLATE`:
a system turn, a user turn with `<Instruct>`, `<Query>` and `<Document>` lines, an assistant turn
opened with an empty `<think>` block) and reads the last token's logits:
score = softmax([logit("no"), logit("yes")])[1]. llama.cpp's converter keeps only the two rows of
the LM head that matter, as `cls.output.weight` = [yes row, no row], with pooling type 4 (rank) and
this prompt as the `rerank` chat template; corral holds an HF checkpoint the same way, so the
score is softmax(cls.output @ h_last)[0] for both formats.

An HF folder is taken for a Qwen3-Reranker (its config says only Qwen3ForCausalLM) when
(`is_qwen3_reranker`):
- its config.json carries vLLM's explicit marker, `"classifier_from_token": ["no", "yes"]`
  (vLLM's `--hf-overrides` for this model; `is_original_qwen3_reranker` is accepted too), or
- its folder name, config `_name_or_path` or the name it was asked for (a store name such as
  "Qwen/Qwen3-Reranker-0.6B", whose folder is named by a hash) contains "qwen3-reranker", or its
  README.md has the model card's "# Qwen3-Reranker" heading, as llama.cpp's converter decides.
"""
from __future__ import annotations

from pathlib import Path

DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
RERANK_TEMPLATE = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    "provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n"
    "<|im_start|>user\n<Instruct>: " + DEFAULT_INSTRUCTION + "\n<Query>: {query}\n<Document>: {document}<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n\n</think>\n\n"
)
YES, NO = "yes", "no"
_NAME_HINT = "qwen3-reranker"
_README_BYTES = 1 << 16  # the heading sits near the top; no need to read a long card whole


def is_qwen3_reranker(folder: Path, config: dict, name: str = "") -> bool:
    """True for a Qwen3 (or Qwen2) causal LM folder that is a Qwen3-Reranker (see the module doc);
    `name`: what the model was asked for by, when not the folder itself."""
    if config.get("model_type") not in ("qwen3", "qwen2"):
        return False
    marker = config.get("classifier_from_token")
    if config.get("is_original_qwen3_reranker") is True or (isinstance(marker, list) and [*marker] == [NO, YES]):
        return True
    names = [folder.name, str(config.get("_name_or_path") or ""), name]
    if any(_NAME_HINT in n.lower() for n in names):
        return True
    try:
        with open(folder / "README.md", encoding="utf-8", errors="replace") as f:
            card = f.read(_README_BYTES).lower()
    except OSError:
        return False
    return "# qwen3-reranker" in card

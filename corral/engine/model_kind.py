"""What a model file does: generate text, embed text, or score (rerank) text pairs.

Read from the files without loading weights: a GGUF's `general.architecture` and
`{arch}.pooling_type` (llama.cpp: 0 none, 1 mean, 2 cls, 3 last, 4 rank); a folder's
`modules.json` (a sentence-transformers model) and config.json `architectures`; a Qwen3 causal LM
folder is a reranker when it is a Qwen3-Reranker (`corral.models.qwen3_reranker.is_qwen3_reranker`)
or a sentence-transformers CrossEncoder of a causal LM (a LogitScore module).
"""
from __future__ import annotations

import json
from pathlib import Path

GENERATE, EMBED, RERANK = "generate", "embed", "rerank"
ENCODER_GGUF_ARCHS = frozenset({"bert", "nomic-bert"})
ENCODER_MODEL_TYPES = frozenset({"bert", "xlm-roberta", "nomic_bert", "nomic-bert"})
GGUF_POOLING = {1: "mean", 2: "cls", 3: "last", 4: "rank"}


def gguf_kind(metadata) -> str:
    arch = metadata.get("general.architecture")
    pooling = metadata.get(f"{arch}.pooling_type")
    if pooling == 4:
        return RERANK
    if arch in ENCODER_GGUF_ARCHS or pooling in (1, 2, 3):
        return EMBED
    return GENERATE


def logit_score_module(folder: Path) -> dict | None:
    """The LogitScore entry of a folder's modules.json, None when it has none (never raises: the
    loader reports broken files)."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for m in modules if isinstance(modules, list) else []:
        if isinstance(m, dict) and str(m.get("type", "")).rsplit(".", 1)[-1] == "LogitScore":
            return m
    return None


def hf_kind(folder: Path, name: str = "") -> str:
    """`name`: what the model was asked for by (a store name), a hint besides the files."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return GENERATE  # the generation loader reports the broken file
    archs = config.get("architectures") or [] if isinstance(config, dict) else []
    if any(isinstance(a, str) and a.endswith("ForSequenceClassification") for a in archs):
        return RERANK
    from corral.models.qwen3_reranker import is_qwen3_reranker

    if logit_score_module(folder) is not None or (isinstance(config, dict) and is_qwen3_reranker(folder, config, name)):
        return RERANK
    if (folder / "modules.json").is_file() or config.get("model_type") in ENCODER_MODEL_TYPES:
        return EMBED
    return GENERATE


def model_kind(path: str | Path, name: str = "") -> str:
    """GENERATE, EMBED or RERANK for a .gguf file or a model folder (GENERATE when unsure: the
    generation loader then says what is wrong with the files). `name`: the store name it was
    asked for by, if any (see hf_kind)."""
    p = Path(path)
    if p.is_dir():
        ggufs = sorted(p.glob("*.gguf"))
        if (p / "config.json").is_file():
            return hf_kind(p, name)
        if len(ggufs) != 1:
            return GENERATE
        p = ggufs[0]
    from corral.loader.gguf_file import GGUFFile, is_gguf

    if not p.is_file() or not is_gguf(p):
        return GENERATE
    return gguf_kind(GGUFFile(p).metadata)

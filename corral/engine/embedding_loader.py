"""Load an embedding or reranking model: the network, its tokenizer and how to pool.

Sources:
- GGUF (llama.cpp's `bert`, `nomic-bert`, `qwen2`/`qwen3` with `{arch}.pooling_type`): weights
  dequantized to float32; embeddings normalized (llama.cpp's and Ollama's default);
- a sentence-transformers folder (`modules.json`: Transformer, Pooling, optional Normalize;
  BERT, XLM-RoBERTa, nomic-bert (nomic-embed-text's remote-code checkpoint), Qwen3/Qwen2;
  `sentence_bert_config.json`'s max_seq_length), or a plain Hugging Face encoder folder (mean
  pooling, not normalized, as sentence-transformers treats one);
- a cross-encoder folder (`*ForSequenceClassification`) or a `pooling_type` 4 (rank) GGUF: a
  reranker scoring the first token through its classification head;
- a causal-LM reranker (`causal_reranker`: a Qwen3-Reranker folder or a sentence-transformers
  LogitScore CrossEncoder, or a `qwen3` rank GGUF as llama.cpp converts one): the last token through
  the LM head's rows of the true/false tokens (`cls.output`, [yes, no]), on the model's prompt.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from corral.engine.model_kind import GGUF_POOLING, RERANK, gguf_kind, hf_kind
from corral.errors import ModelFileError, UnsupportedModelError
from corral.loader.config import ModelConfig
from corral.loader.weights import read_config_json
from corral.models.bert import BertEncoder, EncoderConfig, hf_name_to_gguf, nomic_config_from_hf
from corral.engine.rerank_prompt import TemplatePrompt
from corral.models.qwen3_reranker import RERANK_TEMPLATE

_DECODER_ARCHS = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}
_ST_KNOWN_MODULES = ("Transformer", "Pooling", "Normalize")


@dataclass(frozen=True)
class Pooling:
    mode: str  # "mean", "cls" or "last"
    normalize: bool
    task: str  # "embed" or "rerank"
    # rerank scores from the classifier's logits: "sigmoid" or "identity" of the first one, or
    # "softmax" over all of them, first kept (Qwen3-Reranker's P(yes) from [yes, no])
    activation: str = "sigmoid"


@dataclass
class EmbeddingModel:
    path: Path
    network: torch.nn.Module  # BertEncoder or DecoderEncoder
    tokenizer: Any  # corral.tokenizer.Tokenizer
    pooling: Pooling
    max_len: int  # tokens one input may have, special tokens included
    dim: int
    format: str  # "gguf" or "hf"
    architecture: str
    weights_bytes: int
    load_seconds: float
    # a causal reranker's prompt for each pair (rerank_prompt.TemplatePrompt or ChatPrompt); None: the
    # tokenizer's pair layout
    rerank_prompt: Any = None

    @property
    def kind(self) -> str:
        return self.pooling.task

    @property
    def model_config(self) -> ModelConfig:
        """The shape in ModelConfig's terms (what /api/show and /api/ps report)."""
        cfg = self.network.cfg
        if isinstance(cfg, ModelConfig):
            return cfg
        return ModelConfig(
            architecture=self.architecture, vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads, head_dim=cfg.head_dim,
            max_position_embeddings=cfg.max_positions, rms_norm_eps=cfg.layer_norm_eps, rope_theta=cfg.rope_theta,
            model_type=cfg.family,
        )


def load_embedding_model(path: str | Path, name: str = "") -> EmbeddingModel:
    """Raises ModelFileError / UnsupportedModelError naming the file for what cannot be loaded.
    `name`: the store name the model was asked for by, if any (it can tell a Qwen3-Reranker)."""
    start = time.monotonic()
    p = Path(path)
    if p.is_dir() and not (p / "config.json").is_file():
        ggufs = sorted(p.glob("*.gguf"))
        if len(ggufs) == 1:
            p = ggufs[0]
    model = _load_gguf(p) if p.is_file() else _load_hf(p, name)
    model.weights_bytes = sum(t.numel() * t.element_size() for t in model.network.w.values())
    model.load_seconds = time.monotonic() - start
    return model


# -- GGUF --------------------------------------------------------------------------------------


def _load_gguf(p: Path) -> EmbeddingModel:
    from corral.loader.dequant import dequantize
    from corral.loader.gguf_file import GGUFFile
    from corral.tokenizer import Tokenizer

    gf = GGUFFile(p)
    md, arch = gf.metadata, gf.architecture
    pooling_type = md.get(f"{arch}.pooling_type")
    task = "rerank" if gguf_kind(md) == RERANK else "embed"
    weights = {name: dequantize(t.type_name, t.data, t.shape, name=name, path=str(p)).float()
               for name, t in gf.tensors.items()}
    tokenizer = Tokenizer.from_gguf(gf)

    def key(name: str, default=None):
        value = md.get(f"{arch}.{name}", default)
        if value is None:
            raise ModelFileError(p, f"GGUF metadata has no {arch}.{name}; re-convert the model")
        return value

    if arch in ("bert", "nomic-bert"):
        cfg = EncoderConfig(
            family=arch, vocab_size=weights["token_embd.weight"].shape[0], hidden_size=int(key("embedding_length")),
            num_layers=int(key("block_count")), num_heads=int(key("attention.head_count")),
            intermediate_size=int(key("feed_forward_length")), max_positions=int(key("context_length")),
            layer_norm_eps=float(key("attention.layer_norm_epsilon", 1e-12)), rope_theta=float(key("rope.freq_base", 1000.0)),
        )
        network: torch.nn.Module = BertEncoder(cfg)
        default_mode, max_len, dim = "mean", cfg.max_positions, cfg.hidden_size
    elif arch in _DECODER_ARCHS:
        from corral.loader.gguf_config import config_from_gguf
        from corral.models.decoder_embedding import DecoderEncoder

        mcfg = config_from_gguf(gf)
        network = DecoderEncoder(mcfg)
        default_mode, max_len, dim = "last", mcfg.max_position_embeddings, mcfg.hidden_size
    else:
        raise UnsupportedModelError(p, f"architecture {arch!r} is not an embedding model corral runs; "
                                       "supported: bert, nomic-bert, qwen2 and qwen3 (with a pooling type)")
    network.load_weights(weights, str(p))
    if task == "rerank" and arch in _DECODER_ARCHS:
        prompt = TemplatePrompt(tokenizer.chat_templates.get("rerank") or RERANK_TEMPLATE)
        return _causal_reranker(p, network, tokenizer, max_len, dim, "gguf", arch, prompt, "softmax")
    mode = "cls" if task == "rerank" else GGUF_POOLING.get(pooling_type, default_mode)
    return EmbeddingModel(p, network, tokenizer, Pooling(mode, normalize=task == "embed", task=task),
                          max_len, dim, "gguf", arch, 0, 0.0)


def _causal_reranker(path: Path, network, tokenizer, max_len: int, dim: int, fmt: str, arch: str,
                     prompt, activation: str) -> EmbeddingModel:
    """A causal-LM reranker (see causal_reranker): needs its classifier rows, `cls.output.weight`
    ([yes, no] in a GGUF), two for the softmax and log-odds activations."""
    w = network.w.get("cls.output.weight")
    rows = 2 if activation in ("softmax", "log_odds") else 1
    if w is None or w.shape[0] != rows:
        raise ModelFileError(path, f"this rank-pooling decoder has no {rows}-row 'cls.output.weight' (the LM "
                                   "head's 'yes' and 'no' rows); re-convert it with llama.cpp's convert_hf_to_gguf.py")
    if isinstance(prompt, TemplatePrompt) and ("{query}" not in prompt.template or "{document}" not in prompt.template):
        raise ModelFileError(path, "the reranker's prompt template has no {query} or {document} placeholder")
    return EmbeddingModel(path, network, tokenizer, Pooling("last", False, "rerank", activation), max_len, dim,
                          fmt, arch, 0, 0.0, rerank_prompt=prompt)


# -- Hugging Face / sentence-transformers folders ---------------------------------------------


_POOLING_MODES = {"cls": "cls", "mean": "mean", "lasttoken": "last"}
_POOLING_FLAGS = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean", "pooling_mode_lasttoken": "last"}


def _pooling_mode(folder: Path, pc: dict) -> str:
    """The one pooling a Pooling config asks for: sentence-transformers 6 writes `pooling_mode`,
    earlier versions one `pooling_mode_*` flag per mode."""
    given = pc.get("pooling_mode")
    if given is not None:
        modes = [given] if isinstance(given, str) else list(given)
    else:
        modes = [k.removeprefix("pooling_mode_") for k, v in pc.items() if k.startswith("pooling_mode") and v]
        modes = [_POOLING_FLAGS.get(f"pooling_mode_{m}", m) for m in modes]
        modes = [{"cls": "cls", "mean": "mean", "last": "lasttoken"}.get(m, m) for m in modes]
    if len(modes) != 1 or modes[0] not in _POOLING_MODES or pc.get("include_prompt") is False:
        raise UnsupportedModelError(folder, f"pooling {pc} is not supported; corral pools by one of the CLS "
                                            "token, the mean of the tokens or the last token")
    return _POOLING_MODES[modes[0]]


def _max_seq_length(folder: Path) -> int | None:
    for name, key in (("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length")):
        if (folder / name).is_file():
            value = read_config_json(folder / name).get(key)
            if isinstance(value, int) and 0 < value < 1 << 24:
                return value
    return None


def _activation(folder: Path, config: dict) -> str:
    st = {}
    if (folder / "config_sentence_transformers.json").is_file():
        st = read_config_json(folder / "config_sentence_transformers.json")
    name = st.get("activation_fn") or (config.get("sentence_transformers") or {}).get("activation_fn") or ""
    return "identity" if "Identity" in str(name) else "sigmoid"


def _st_pooling(folder: Path, task: str, default_mode: str, config: dict) -> Pooling:
    """The pooling modules.json describes (a plain encoder folder: mean, not normalized)."""
    if task == RERANK:
        return Pooling("cls", False, "rerank", _activation(folder, config))
    mode, normalize = default_mode, False
    if (folder / "modules.json").is_file():
        modules = read_config_json(folder / "modules.json")
        for m in modules if isinstance(modules, list) else []:
            kind = str(m.get("type", "")).rsplit(".", 1)[-1]
            if kind not in _ST_KNOWN_MODULES:
                raise UnsupportedModelError(folder, f"sentence-transformers module {m.get('type')!r} is not "
                                                    "supported (corral runs Transformer, Pooling and Normalize)")
            if kind == "Normalize":
                normalize = True
            if kind == "Pooling":
                mode = _pooling_mode(folder, read_config_json(folder / m.get("path", "") / "config.json"))
    return Pooling(mode, normalize, "embed")


def _load_hf(folder: Path, name: str = "") -> EmbeddingModel:
    from corral.loader.gguf_names import hf_to_gguf
    from corral.loader.safetensors_weights import iter_safetensors_weights, safetensors_files
    from corral.tokenizer import Tokenizer

    config = read_config_json(folder / "config.json")
    model_type = str(config.get("model_type", ""))
    task = hf_kind(folder, name)
    tokenizer = Tokenizer.from_hf_dir(folder)
    raw = dict(iter_safetensors_weights(safetensors_files(folder)))
    if model_type in ("bert", "xlm-roberta"):
        offset = int(config.get("pad_token_id", 1)) + 1 if model_type == "xlm-roberta" else 0
        cfg = EncoderConfig(
            family="bert", vocab_size=int(config["vocab_size"]), hidden_size=int(config["hidden_size"]),
            num_layers=int(config["num_hidden_layers"]), num_heads=int(config["num_attention_heads"]),
            intermediate_size=int(config["intermediate_size"]),
            max_positions=int(config.get("max_position_embeddings", 512)) - offset,
            layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
        )
        weights = {}
        for tensor_name, t in raw.items():
            g = hf_name_to_gguf(tensor_name)
            if g is not None:
                weights[g] = t[offset:].float() if g == "position_embd.weight" else t.float()
        network: torch.nn.Module = BertEncoder(cfg)
        default_mode, model_max, dim = "mean", cfg.max_positions, cfg.hidden_size
    elif model_type in ("nomic_bert", "nomic-bert"):
        cfg = nomic_config_from_hf(config, str(folder / "config.json"))
        weights = {g: t.float() for g, t in ((hf_name_to_gguf(n), t) for n, t in raw.items()) if g is not None}
        network = BertEncoder(cfg)
        default_mode, model_max, dim = "mean", cfg.max_positions, cfg.hidden_size
    elif model_type in _DECODER_ARCHS:
        from corral.engine.causal_reranker import reranker_head
        from corral.loader.hf_config import config_from_hf
        from corral.models.decoder_embedding import DecoderEncoder

        mcfg = config_from_hf({**config, "architectures": [_DECODER_ARCHS[model_type]]}, folder / "config.json")
        weights = {}
        for tensor_name, t in raw.items():
            prefixed = tensor_name if tensor_name.startswith(("model.", "lm_head.")) else "model." + tensor_name
            g = hf_to_gguf(prefixed)
            if g is not None:
                weights[g] = t.float()
        if task == RERANK:
            head, activation, prompt = reranker_head(folder, config, raw, weights, tokenizer,
                                                     _activation(folder, config), name)
            weights["cls.output.weight"] = head
        weights.pop("output.weight", None)  # the LM head: a reranker keeps only the rows it reads
        network = DecoderEncoder(mcfg)
        default_mode, model_max, dim = "last", mcfg.max_position_embeddings, mcfg.hidden_size
    else:
        raise UnsupportedModelError(folder, f"model_type {model_type!r} is not an embedding model corral runs; "
                                            "supported: bert, xlm-roberta, nomic_bert, qwen2 and qwen3")
    network.load_weights(weights, str(folder))
    pooling, max_seq = _st_pooling(folder, task, default_mode, config), _max_seq_length(folder)
    max_len = min(max_seq, model_max) if max_seq else model_max
    if task == RERANK and model_type in _DECODER_ARCHS:
        return _causal_reranker(folder, network, tokenizer, max_len, dim, "hf", model_type, prompt, activation)
    return EmbeddingModel(folder, network, tokenizer, pooling, max_len, dim, "hf", model_type, 0, 0.0)

"""Write a Hugging Face folder's tokenizer into a GGUF file, as llama.cpp's converter does.

Byte-level BPE (tokenizer.json with a ByteLevel decoder) becomes tokenizer model "gpt2": tokens
padded to config.json's vocab_size with `[PADn]`, token types (normal, control for special added
tokens, user-defined for other added tokens, unused for padding), merges, the `pre` name of the
tokenizer's regex split. A SentencePiece tokenizer.model becomes "llama": pieces, scores, types,
add_space_prefix. Both get special token ids, add_bos/add_eos and the chat template through
`gguf.SpecialVocab`, the converter's own reader of tokenizer_config.json.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from corral.errors import TokenizerError
from corral.tokenizer import pre_tokenizers
from corral.tokenizer.token_types import CONTROL, NORMAL, UNKNOWN, UNUSED, USER_DEFINED, looks_like_control

logger = logging.getLogger(__name__)


def add_tokenizer_to_gguf(writer: Any, hf_dir: Path) -> None:
    """Add `tokenizer.ggml.*` (and `tokenizer.chat_template`) keys for the tokenizer in `hf_dir`
    to `writer` (a `gguf.GGUFWriter` before its header is written). Raises TokenizerError when the
    folder has no tokenizer corral can convert."""
    hf_dir = Path(hf_dir)
    tokenizer_json = hf_dir / "tokenizer.json"
    spec = _read_json(tokenizer_json) if tokenizer_json.is_file() else None
    if spec is not None and '"ByteLevel"' in json.dumps(spec.get("decoder") or {}):
        tokens = _write_byte_level(writer, hf_dir, spec)
        load_merges = True
    elif (hf_dir / "tokenizer.model").is_file():
        tokens = _write_sentencepiece(writer, hf_dir)
        load_merges = False
    elif spec is not None:
        raise TokenizerError(hf_dir, "tokenizer.json is neither byte-level BPE nor accompanied by a "
                                     "SentencePiece tokenizer.model; corral cannot convert it to GGUF")
    else:
        raise TokenizerError(hf_dir, "no tokenizer.json or tokenizer.model in this folder; download the "
                                     "model's tokenizer files into it")
    _write_special(writer, hf_dir, tokens, load_merges)


def _write_byte_level(writer: Any, hf_dir: Path, spec: dict) -> list[str]:
    from tokenizers import Tokenizer as Engine

    engine = Engine.from_file(str(hf_dir / "tokenizer.json"))
    vocab = engine.get_vocab(with_added_tokens=True)
    by_id = {i: t for t, i in vocab.items()}
    added = engine.get_added_tokens_decoder()
    n_vocab = max(_config_vocab_size(hf_dir) or 0, max(by_id) + 1)
    tokens, types = [], []
    for i in range(n_vocab):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
        elif i in added:
            tok = added[i]
            tokens.append(tok.content)
            types.append(CONTROL if tok.special or looks_like_control(tok.content) else USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(NORMAL)
    regexes = _split_regexes(spec.get("pre_tokenizer"))
    pre = pre_tokenizers.name_for_regexes(regexes) if regexes is not None else None
    if pre is None:
        logger.warning("%s: pre-tokenizer not recognized; writing 'default' (tokenization may differ)", hf_dir)
        pre = "default"
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    return tokens


def _split_regexes(node: dict | None) -> list[str] | None:
    """The regex splits of a tokenizer.json pre_tokenizer, in the form pre_tokenizers.py uses,
    or None when it holds something other than Split/Digits/ByteLevel steps."""
    if node is None:
        return None
    steps = node.get("pretokenizers") if node.get("type") == "Sequence" else [node]
    regexes = []
    for step in steps:
        kind = step.get("type")
        if kind == "Split" and "Regex" in (step.get("pattern") or {}) and step.get("behavior") == "Isolated" \
                and not step.get("invert"):
            regexes.append(step["pattern"]["Regex"])
        elif kind == "Digits":
            regexes.append(r"\p{N}" if step.get("individual_digits") else r"\p{N}+")
        elif kind == "ByteLevel":
            if step.get("add_prefix_space"):
                return None
            if step.get("use_regex", True):
                regexes.append(pre_tokenizers.GPT2)
        else:
            return None
    return regexes


def _write_sentencepiece(writer: Any, hf_dir: Path) -> list[str]:
    from corral.tokenizer.spm_model import read_spm_model

    model = read_spm_model(hf_dir / "tokenizer.model")
    if model.model_type != "bpe":
        raise TokenizerError(hf_dir / "tokenizer.model", f"a SentencePiece {model.model_type} model cannot be "
                                                         "written as a GGUF 'llama' (BPE) vocabulary")
    tokens, scores, types = list(model.pieces), list(model.scores), list(model.types)
    added_json = _read_json(hf_dir / "added_tokens.json") if (hf_dir / "added_tokens.json").is_file() else {}
    for text, i in sorted(added_json.items(), key=lambda kv: kv[1]):
        if i >= len(tokens):
            tokens.append(text)
            scores.append(-1000.0)
            types.append(USER_DEFINED)
    config = _read_json(hf_dir / "tokenizer_config.json") if (hf_dir / "tokenizer_config.json").is_file() else {}
    for key, tok in sorted((config.get("added_tokens_decoder") or {}).items(), key=lambda kv: int(kv[0])):
        i, text = int(key), tok.get("content")
        if not isinstance(text, str):
            continue
        kind = CONTROL if tok.get("special") else USER_DEFINED
        if i < len(tokens):
            tokens[i] = text
            if types[i] not in (CONTROL, UNKNOWN):  # keep <unk> unknown and control tokens control
                types[i] = kind
        elif i == len(tokens):
            tokens.append(text)
            scores.append(-1000.0)
            types.append(kind)
    for i in range(len(tokens), _config_vocab_size(hf_dir) or 0):
        tokens.append(f"[PAD{i}]")
        scores.append(-1000.0)
        types.append(UNUSED)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_add_space_prefix(model.add_dummy_prefix)
    return tokens


def _write_special(writer: Any, hf_dir: Path, tokens: list[str], load_merges: bool) -> None:
    import gguf

    special = gguf.SpecialVocab(hf_dir, load_merges=load_merges, n_vocab=len(tokens))
    if load_merges and not special.merges:
        raise TokenizerError(hf_dir, "the byte-level BPE tokenizer has no merges; re-download tokenizer.json")
    # Without tokenizer.json the converter's reader cannot map token strings to ids: do it here.
    config = _read_json(hf_dir / "tokenizer_config.json") if (hf_dir / "tokenizer_config.json").is_file() else {}
    for typ in ("bos", "eos", "unk", "pad"):
        value = config.get(f"{typ}_token")
        value = value.get("content") if isinstance(value, dict) else value
        if typ not in special.special_token_ids and isinstance(value, str) and value in tokens:
            special.special_token_ids[typ] = tokens.index(value)
    special.add_to_gguf(writer, quiet=True)


def _config_vocab_size(hf_dir: Path) -> int | None:
    path = hf_dir / "config.json"
    if not path.is_file():
        return None
    config = _read_json(path)
    value = config.get("vocab_size", (config.get("text_config") or {}).get("vocab_size"))
    return value if isinstance(value, int) else None


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenizerError(path, f"not valid JSON ({e}); re-download it") from None
    return value if isinstance(value, dict) else {}

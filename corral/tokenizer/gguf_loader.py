"""Build a Tokenizer from GGUF `tokenizer.ggml.*` metadata, following llama.cpp's reading of it.

"gpt2": byte-level BPE (tokens, token_type, merges, `pre` naming the regex split).
"llama": SentencePiece BPE (tokens, scores, token_type with `<0xNN>` byte tokens, add_space_prefix).
"bert": WordPiece (BERT encoders); [CLS] (`bos_token_id`) and [SEP] (`seperator_token_id`) are put
around every input, as llama.cpp does (`add_sep_token`, default true).
"t5": Unigram (XLM-RoBERTa, bge-m3; tokens, scores, precompiled_charsmap), EOS added by default.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from corral.errors import TokenizerError
from corral.tokenizer import pre_tokenizers
from corral.tokenizer.token_types import CONTROL, END_OF_TURN_TEXTS, NORMAL
from corral.tokenizer.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

KEY = "tokenizer.ggml."
SUPPORTED = "'gpt2' (byte-level BPE), 'llama' (SentencePiece), 'bert' (WordPiece) and 't5' (Unigram)"


def load_gguf_tokenizer(metadata: Mapping[str, Any], source: str) -> Tokenizer:
    """Raises TokenizerError for a missing vocabulary or an unknown `tokenizer.ggml.model`."""
    model = metadata.get(KEY + "model")
    if model is None:
        raise TokenizerError(source, "the GGUF file has no tokenizer (tokenizer.ggml.model is missing); "
                                     "use a GGUF converted with its vocabulary")
    if not isinstance(model, str):
        raise TokenizerError(source, f"tokenizer.ggml.model is {show(model)}, not a name; the file is corrupt")
    tokens = metadata.get(KEY + "tokens")
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        raise TokenizerError(source, "the GGUF file has no tokenizer.ggml.tokens list of strings; re-convert the model")
    tokens = [t if t else f"[EMPTY_{i}]" for i, t in enumerate(tokens)]  # llama.cpp's placeholder
    types = metadata.get(KEY + "token_type")  # a numpy array from GGUFFile, or any sequence
    types = [NORMAL] * len(tokens) if types is None else _per_token(types, "token_type", "integers", len(tokens), source)
    # llama.cpp marks end-of-turn tokens as control even when the converter did not.
    for i, t in enumerate(tokens):
        if t in END_OF_TURN_TEXTS and types[i] == NORMAL:
            types[i] = CONTROL

    added_tokens = None
    eos_key, add_eos_default = "eos", False
    if model == "bert":
        from corral.tokenizer.wpm_engine import build_wordpiece_engine

        unk = metadata.get(KEY + "unknown_token_id")
        unk_text = tokens[unk] if isinstance(unk, int) and 0 <= unk < len(tokens) else "[UNK]"
        engine = build_wordpiece_engine(tokens, types, unk_text)
        add_sep = metadata.get(KEY + "add_sep_token")
        add_bos_default, piece_kind = True, "text"
        add_eos_default = add_sep if isinstance(add_sep, bool) else True
        eos_key = "seperator" if isinstance(metadata.get(KEY + "seperator_token_id"), int) else "eos"
    elif model == "t5":
        engine = _unigram(metadata, tokens, types, source)
        add_bos_default, add_eos_default, piece_kind = False, True, "spm"
    elif model == "gpt2":
        engine, added_tokens, add_bos_default = _byte_level(metadata, tokens, types, source)
        piece_kind = "byte_level"
    elif model == "llama":
        engine = _sentencepiece(metadata, tokens, types, source)
        add_bos_default, piece_kind = True, "spm"
    else:
        raise TokenizerError(source, f"tokenizer model {model!r} is not supported; corral reads {SUPPORTED} tokenizers")

    def special(name: str) -> int | None:
        value = metadata.get(KEY + name + "_token_id")
        return int(value) if type(value) is int and 0 <= value < len(tokens) else None

    eos_id = special(eos_key)
    extra_eos = {i for i in (special("eot"), special("eom")) if i is not None}
    extra_eos |= {i for i, t in enumerate(tokens) if t in END_OF_TURN_TEXTS}
    templates = {}
    if isinstance(metadata.get("tokenizer.chat_template"), str):
        templates["default"] = metadata["tokenizer.chat_template"]
    names = metadata.get("tokenizer.chat_templates")
    for name in names if isinstance(names, list) else []:
        value = metadata.get(f"tokenizer.chat_template.{name}")
        if isinstance(value, str):
            templates[name] = value
    add_bos = metadata.get(KEY + "add_bos_token")
    add_eos = metadata.get(KEY + "add_eos_token")
    return Tokenizer(
        engine,
        source=source,
        piece_kind=piece_kind,
        bos_token_id=special("bos"),
        eos_token_id=eos_id,
        add_bos=add_bos if isinstance(add_bos, bool) else add_bos_default,
        add_eos=add_eos if isinstance(add_eos, bool) else add_eos_default,
        extra_eos_ids=extra_eos,
        chat_templates=templates,
        unk_token_id=special("unknown"),
        pad_token_id=special("padding"),
        added_tokens=added_tokens,
        vocab_size=len(tokens) if added_tokens is not None else None,
    )


def _byte_level(metadata: Mapping[str, Any], tokens: list[str], types: list[int], source: str):
    from corral.tokenizer.bpe_engine import build_byte_level_engine

    raw_merges = metadata.get(KEY + "merges")
    if not isinstance(raw_merges, list):
        raise TokenizerError(source, "a 'gpt2' tokenizer needs tokenizer.ggml.merges; re-convert the model")
    merges = []
    for m in raw_merges:
        parts = m.split(" ") if isinstance(m, str) else ()
        if len(parts) != 2:
            raise TokenizerError(source, f"malformed merge {show(m)} in tokenizer.ggml.merges; re-convert the model")
        merges.append((parts[0], parts[1]))
    pre = metadata.get(KEY + "pre")
    if pre is not None and not isinstance(pre, str):
        raise TokenizerError(source, f"tokenizer.ggml.pre is {show(pre)}, not a name; the file is corrupt")
    pre = pre or "default"
    regexes = pre_tokenizers.split_regexes(pre)
    if regexes is None:
        logger.warning("%s: unknown pre-tokenizer %r, using 'default' (tokenization may differ from the "
                       "original model); re-convert with a current converter", source, pre)
        regexes = pre_tokenizers.split_regexes("default")
    try:
        engine, added = build_byte_level_engine(tokens, types, merges, regexes,
                                                ignore_merges=pre in pre_tokenizers.IGNORE_MERGES)
    except Exception as e:  # the Rust library reports bad vocabularies as plain Exceptions
        raise TokenizerError(source, f"cannot build the BPE tokenizer from the GGUF vocabulary: {e}") from None
    return engine, added, pre in pre_tokenizers.ADD_BOS_BY_DEFAULT


def _sentencepiece(metadata: Mapping[str, Any], tokens: list[str], types: list[int], source: str):
    from corral.tokenizer.spm_engine import build_spm_engine

    scores = metadata.get(KEY + "scores")
    if scores is None:
        raise TokenizerError(source, "a 'llama' tokenizer needs one tokenizer.ggml.scores entry per token; "
                                     "re-convert the model")
    scores = _per_token(scores, "scores", "numbers", len(tokens), source)
    add_space_prefix = metadata.get(KEY + "add_space_prefix")
    try:
        return build_spm_engine(tokens, scores, types,
                                add_space_prefix if isinstance(add_space_prefix, bool) else True)
    except Exception as e:
        raise TokenizerError(source, f"cannot build the SentencePiece tokenizer from the GGUF vocabulary: {e}") from None


def _per_token(values: Any, key: str, kind: str, n_tokens: int, source: str) -> list:
    """A GGUF numeric array with one entry per token, as a list of ints ("integers") or finite
    floats ("numbers"); raises TokenizerError for anything else."""
    wanted = "iu" if kind == "integers" else "iuf"
    if isinstance(values, (list, tuple)):  # metadata built in Python rather than read from a file
        try:
            values = np.asarray(values)
        except (ValueError, OverflowError):
            pass
    if not isinstance(values, np.ndarray) or values.ndim != 1 or values.dtype.kind not in wanted:
        raise TokenizerError(source, f"tokenizer.ggml.{key} must be an array of {kind}, not {show(values)}; "
                                     "re-convert the model")
    if len(values) != n_tokens:
        raise TokenizerError(source, f"tokenizer.ggml.{key} has {len(values)} entries for {n_tokens} tokens")
    if kind == "integers":
        return values.astype(np.int64).tolist()
    floats = values.astype(np.float64)
    if not np.isfinite(floats).all():
        raise TokenizerError(source, f"tokenizer.ggml.{key} holds a NaN or infinite value; re-convert the model")
    return floats.tolist()


def show(value: Any) -> str:
    """`value` for an error message, cut to about 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unigram(metadata: Mapping[str, Any], tokens: list[str], types: list[int], source: str):
    from corral.tokenizer.ugm_engine import build_unigram_engine

    scores = metadata.get(KEY + "scores")
    if scores is None or isinstance(scores, str) or len(scores) != len(tokens):
        raise TokenizerError(source, "a 't5' tokenizer needs one tokenizer.ggml.scores entry per token; "
                                     "re-convert the model")
    charsmap = metadata.get(KEY + "precompiled_charsmap")
    charsmap = bytes(np.asarray(charsmap, dtype=np.uint8)) if charsmap is not None and len(charsmap) else None
    prefix, collapse = metadata.get(KEY + "add_space_prefix"), metadata.get(KEY + "remove_extra_whitespaces")
    try:
        return build_unigram_engine(tokens, np.asarray(scores, dtype=np.float64).tolist(), types, charsmap,
                                    prefix if isinstance(prefix, bool) else True,
                                    collapse if isinstance(collapse, bool) else True)
    except Exception as e:
        raise TokenizerError(source, f"cannot build the Unigram tokenizer from the GGUF vocabulary: {e}") from None

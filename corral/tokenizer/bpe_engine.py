"""Build a `tokenizers` engine for a byte-level BPE vocabulary (llama.cpp's "gpt2" vocab)."""
from __future__ import annotations

from collections.abc import Sequence

from corral.tokenizer.token_types import CONTROL, UNKNOWN, USER_DEFINED


def build_byte_level_engine(tokens: Sequence[str], types: Sequence[int], merges: Sequence[tuple[str, str]],
                            split_regexes: Sequence[str], ignore_merges: bool = False):
    """A `tokenizers.Tokenizer`: the text is split by each regex in turn (isolated), mapped to the
    byte alphabet, then merged. Control tokens become special added tokens, user-defined tokens
    plain added tokens; both are matched in the text before splitting."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {}
    for i, t in enumerate(tokens):
        vocab.setdefault(t, i)
    engine = Tokenizer(models.BPE(vocab, list(merges), ignore_merges=ignore_merges))
    steps = [pre_tokenizers.Split(Regex(r), behavior="isolated", invert=False) for r in split_regexes]
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False))
    engine.pre_tokenizer = pre_tokenizers.Sequence(steps)
    engine.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    engine.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                               for i, t in enumerate(types) if t in (CONTROL, UNKNOWN)])
    engine.add_tokens([AddedToken(tokens[i], special=False, normalized=False)
                       for i, t in enumerate(types) if t == USER_DEFINED])
    return engine

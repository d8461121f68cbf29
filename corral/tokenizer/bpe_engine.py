"""Build a `tokenizers` engine for a byte-level BPE vocabulary (llama.cpp's "gpt2" vocab)."""
from __future__ import annotations

from collections.abc import Sequence

from corral.tokenizer.added_tokens import AddedTokens
from corral.tokenizer.token_types import CONTROL, UNKNOWN, USER_DEFINED


def build_byte_level_engine(tokens: Sequence[str], types: Sequence[int], merges: Sequence[tuple[str, str]],
                            split_regexes: Sequence[str], ignore_merges: bool = False):
    """(engine, added): a `tokenizers.Tokenizer` over the vocabulary's other tokens, which splits
    the text by each regex in turn (isolated), maps it to the byte alphabet, then merges; and the
    AddedTokens table of its control, unknown (both special) and user-defined tokens, which the
    Tokenizer matches in the text before the engine sees it."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    is_added = [kind in (CONTROL, UNKNOWN, USER_DEFINED) for kind in types]
    # Added tokens stay in the engine's vocabulary only where a merge needs them (an added token
    # that is also an ordinary vocabulary entry); the BPE model refuses merges it cannot spell.
    added_texts = {t for t, a in zip(tokens, is_added) if a}
    merged = {t for a, b in merges for t in (a, b, a + b) if t in added_texts}
    del added_texts
    vocab: dict[str, int] = {}
    added = []
    for i, t in enumerate(tokens):
        if is_added[i]:
            added.append((i, t, types[i] != USER_DEFINED))
        if not is_added[i] or t in merged:
            vocab.setdefault(t, i)
    engine = Tokenizer(models.BPE(vocab, list(merges), ignore_merges=ignore_merges))
    del vocab
    steps = [pre_tokenizers.Split(Regex(r), behavior="isolated", invert=False) for r in split_regexes]
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False))
    engine.pre_tokenizer = pre_tokenizers.Sequence(steps)
    engine.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    return engine, AddedTokens(added, len(tokens))

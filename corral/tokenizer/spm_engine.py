"""Build a `tokenizers` engine that tokenizes like SentencePiece BPE (llama.cpp's "llama" vocab).

SentencePiece BPE repeatedly merges the adjacent pair whose concatenation is the best-scoring
piece. A Hugging Face BPE model does the same when its merges are ranked by the score of the piece
they produce, which is how transformers' converters turn tokenizer.model into tokenizer.json.
Spaces become "▁" (and one is prepended when `add_space_prefix`), characters missing from the
vocabulary fall back to their `<0xNN>` byte pieces.
"""
from __future__ import annotations

from collections.abc import Sequence

from corral.tokenizer.token_types import BYTE, CONTROL, NORMAL, UNKNOWN, USER_DEFINED

SPACE = "▁"


def spm_merges(pieces: Sequence[str], scores: Sequence[float], types: Sequence[int]) -> list[tuple[str, str]]:
    """Merges for every normal piece that splits into two vocabulary pieces, best score first
    (ties: lower ids of the parts first)."""
    ids = {}
    for i, p in enumerate(pieces):
        ids.setdefault(p, i)
    ranked = []
    for i, piece in enumerate(pieces):
        if types[i] != NORMAL or len(piece) < 2:
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in ids and right in ids:
                ranked.append((-scores[i], i, ids[left], ids[right], left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def build_spm_engine(pieces: Sequence[str], scores: Sequence[float], types: Sequence[int],
                     add_space_prefix: bool = True):
    """A `tokenizers.Tokenizer` over `pieces` (ids are list positions). Control and unknown pieces
    become special added tokens, user-defined pieces plain added tokens matched before BPE."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

    vocab = {}
    for i, p in enumerate(pieces):
        vocab.setdefault(p, i)
    unk = next((pieces[i] for i, t in enumerate(types) if t == UNKNOWN), None)
    byte_fallback = any(t == BYTE for t in types)
    model = models.BPE(vocab, spm_merges(pieces, scores, types), unk_token=unk,
                       fuse_unk=True, byte_fallback=byte_fallback)
    engine = Tokenizer(model)
    steps = [normalizers.Replace(" ", SPACE)]
    if add_space_prefix:
        steps.insert(0, normalizers.Prepend(SPACE))
    engine.normalizer = normalizers.Sequence(steps)
    decode_steps = [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if add_space_prefix:
        decode_steps.append(decoders.Strip(" ", 1, 0))
    engine.decoder = decoders.Sequence(decode_steps)
    special = [AddedToken(pieces[i], special=True, normalized=False)
               for i, t in enumerate(types) if t in (CONTROL, UNKNOWN)]
    user = [AddedToken(pieces[i], special=False, normalized=False)
            for i, t in enumerate(types) if t == USER_DEFINED]
    engine.add_special_tokens(special)
    engine.add_tokens(user)
    return engine

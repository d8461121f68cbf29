"""Read a SentencePiece `tokenizer.model` file (a serialized `ModelProto`) without protobuf.

Only the fields a tokenizer needs are decoded: the pieces with their scores and types, the
normalizer's `add_dummy_prefix`, and the trainer's model type and byte fallback. Piece types use
SentencePiece's numbering, which GGUF's `tokenizer.ggml.token_type` shares: 1 normal, 2 unknown,
3 control, 4 user-defined, 5 unused, 6 byte.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from corral.errors import TokenizerError

MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}


@dataclass(frozen=True)
class SentencePieceModel:
    pieces: list[str]
    scores: list[float]
    types: list[int]
    add_dummy_prefix: bool
    model_type: str  # "bpe", "unigram", ...
    byte_fallback: bool


def read_spm_model(path: str | Path) -> SentencePieceModel:
    """Parse `path`. Raises TokenizerError if it is not a SentencePiece model."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TokenizerError(path, f"cannot read the SentencePiece model: {e}") from None
    pieces: list[str] = []
    scores: list[float] = []
    types: list[int] = []
    add_dummy_prefix, model_type, byte_fallback = True, 1, False
    try:
        for field, value in _fields(data):
            if field == 1:  # repeated SentencePiece
                piece, score, kind = "", 0.0, 1
                for f, v in _fields(value):
                    if f == 1:
                        piece = v.decode("utf-8")
                    elif f == 2:
                        score = struct.unpack("<f", v)[0]
                    elif f == 3:
                        kind = v
                pieces.append(piece)
                scores.append(score)
                types.append(kind)
            elif field == 2:  # TrainerSpec
                for f, v in _fields(value):
                    if f == 3:
                        model_type = v
                    elif f == 35:
                        byte_fallback = bool(v)
            elif field == 3:  # NormalizerSpec
                for f, v in _fields(value):
                    if f == 3:
                        add_dummy_prefix = bool(v)
    except (IndexError, ValueError, TypeError, AttributeError, struct.error, UnicodeDecodeError) as e:
        raise TokenizerError(path, f"not a valid SentencePiece model ({e}); re-download tokenizer.model") from None
    if not pieces:
        raise TokenizerError(path, "the SentencePiece model has no pieces; re-download tokenizer.model")
    return SentencePieceModel(pieces, scores, types, add_dummy_prefix,
                              MODEL_TYPES.get(model_type, str(model_type)), byte_fallback)


def _fields(buf: bytes):
    """Yield (field number, value) of a protobuf message: ints for varints, bytes otherwise."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise ValueError("truncated message")
        yield field, value


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while shift < 64:  # protobuf varints are at most 10 bytes
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
    raise ValueError(f"a varint at byte {pos} is longer than 10 bytes")

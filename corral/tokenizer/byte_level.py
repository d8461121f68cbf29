"""The GPT-2 byte-level alphabet: each of the 256 byte values is shown as one printable character.

Byte-level BPE vocabularies (GPT-2, Llama 3, Qwen2, ...) spell their tokens in this alphabet, so a
space is "Ġ" and a newline "Ċ". `piece_to_bytes` undoes the mapping for one vocabulary entry.
"""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def byte_to_char() -> dict[int, str]:
    """byte value -> printable character, as GPT-2's `bytes_to_unicode` defines it."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    mapping = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shift)
            shift += 1
    return mapping


@lru_cache(maxsize=1)
def char_to_byte() -> dict[str, int]:
    return {c: b for b, c in byte_to_char().items()}


def piece_to_bytes(piece: str) -> bytes:
    """The bytes a byte-level vocabulary entry stands for. Characters outside the alphabet (which
    only appear in added tokens) are taken as their UTF-8 encoding."""
    table = char_to_byte()
    out = bytearray()
    for ch in piece:
        b = table.get(ch)
        if b is None:
            out += ch.encode("utf-8")
        else:
            out.append(b)
    return bytes(out)

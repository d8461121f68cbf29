"""The added tokens of a GGUF vocabulary (control, unknown and user-defined tokens), kept compact.

They are found in the text before BPE sees it, leftmost-longest, and decode to their text verbatim,
as in llama.cpp and Hugging Face `tokenizers`. Vocabularies padded with reserved control tokens
hold 100k+ of them; the `tokenizers` added vocabulary keeps five copies of each string plus its
matcher (about 390 bytes a token, 56 MiB for a Qwen-sized padding), so GGUF tokenizers keep them
here instead, in one UTF-8 blob sorted by text and flat arrays: 18 bytes a token plus its text
(50 bytes for `<|reserved_special_token_N|>`).
"""
from __future__ import annotations

import os
import re
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from itertools import compress

import numpy as np

NORMAL, SPECIAL, USER = 0, 1, 2  # kinds: not added / control or unknown / user-defined


class AddedTokens:
    """Added tokens by id. `split(text)` cuts them out of a text; `text(id)`, `kind(id)`,
    `find(text)` look them up. Ids outside [0, vocab_size) are NORMAL."""

    def __init__(self, entries: Sequence[tuple[int, str, bool]], vocab_size: int):
        """`entries`: (id, text, special) per added token; special is False for user-defined.
        Texts must not be empty. Where several ids share a text, the text finds the lowest id."""
        entries = sorted(entries)  # by id, so that a repeated text keeps its lowest id first
        if any(not text for _, text, _ in entries):
            raise ValueError("added tokens must have a text")
        raws = [text.encode("utf-8") for _, text, _ in entries]
        order = sorted(range(len(raws)), key=raws.__getitem__)  # stable: equal texts stay by id
        raws = [raws[k] for k in order]
        first = [True] + [a != b for a, b in zip(raws, raws[1:])]  # first entry of its text
        unique = list(compress(raws, first))
        ids = np.array([entries[k][0] for k in order], dtype=np.int64)
        special = np.array([entries[k][2] for k in order], dtype=bool)
        text_index = np.cumsum(first) - 1  # of each sorted entry, into `unique`
        self._n = len(unique)
        self._blob = b"".join(unique)  # texts in byte order, each once
        lengths = np.fromiter(map(len, unique), dtype=np.int64, count=self._n)
        self._starts = _array("q", np.concatenate([[0], np.cumsum(lengths)]))  # text k: blob[starts[k]:starts[k + 1]]
        self._ids = _array("i", ids[np.array(first, dtype=bool)])  # lowest id of text k
        inside = (ids >= 0) & (ids < vocab_size)
        entry = np.full(vocab_size, -1, dtype=np.int64)
        entry[ids[inside]] = text_index[inside]
        self._entry = _array("i", entry)  # id -> text k, or -1
        kind = np.zeros(vocab_size, dtype=np.uint8)
        kind[ids[inside]] = np.where(special[inside], SPECIAL, USER)
        self._kind = bytearray(kind.tobytes())  # id -> NORMAL / SPECIAL / USER
        self._prefixes = {text[:2] for _, text, _ in entries}  # first two characters (the text if shorter)
        self._max_chars = max((len(text) for _, text, _ in entries), default=0)
        chars = "".join(sorted({text[0] for _, text, _ in entries}))
        self._candidate = re.compile(f"[{re.escape(chars)}]") if chars else None

    def __len__(self) -> int:
        return self._n

    def kind(self, token_id: int) -> int:
        return self._kind[token_id] if 0 <= token_id < len(self._kind) else NORMAL

    def text(self, token_id: int) -> str | None:
        """The text of an added token, None for any other id."""
        if not 0 <= token_id < len(self._entry) or self._entry[token_id] < 0:
            return None
        return self._entry_bytes(self._entry[token_id]).decode("utf-8")

    def find(self, text: str) -> int | None:
        """The id of the added token spelled `text`, or None."""
        raw = text.encode("utf-8")
        k = bisect_right(range(self._n), raw, key=self._entry_bytes) - 1
        return self._ids[k] if k >= 0 and self._entry_bytes(k) == raw else None

    def split(self, text: str) -> list[str | int]:
        """`text` as plain pieces (str, never empty) and added-token ids, in order. At each
        position the longest added token starting there wins; the scan then goes on after it."""
        if self._candidate is None:
            return [text] if text else []
        out: list[str | int] = []
        done = 0  # text[:done] is in `out`
        pos = 0
        search = self._candidate.search
        prefixes = self._prefixes
        while (m := search(text, pos)) is not None:
            i = m.start()
            if text[i:i + 2] in prefixes or text[i] in prefixes:
                k, n_chars = self._longest_at(text, i)
                if k is not None:
                    if i > done:
                        out.append(text[done:i])
                    out.append(self._ids[k])
                    done = pos = i + n_chars
                    continue
            pos = i + 1
        if done < len(text):
            out.append(text[done:])
        return out

    def _longest_at(self, text: str, i: int) -> tuple[int | None, int]:
        """(entry, length in characters) of the longest added token that `text[i:]` starts with."""
        s = text[i:i + self._max_chars].encode("utf-8")
        while s:
            k = bisect_right(range(self._n), s, key=self._entry_bytes) - 1
            if k < 0:
                break
            t = self._entry_bytes(k)
            if s.startswith(t):
                return k, len(t.decode("utf-8"))
            # t is the greatest text <= s: any text that is a prefix of s is <= t too, so it
            # is also a prefix of what s and t share.
            s = s[:len(os.path.commonprefix([s, t]))]
        return None, 0

    def _entry_bytes(self, k: int) -> bytes:
        return self._blob[self._starts[k]:self._starts[k + 1]]


def _array(typecode: str, values: np.ndarray) -> array:
    """A compact array.array (fast to index from Python) holding `values`."""
    out = array(typecode)
    out.frombytes(np.ascontiguousarray(values, dtype=np.dtype(typecode)).tobytes())
    return out

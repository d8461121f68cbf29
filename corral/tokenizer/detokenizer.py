"""Turn a stream of generated token ids into text deltas, never half a character.

Each step decodes only a short window of recent ids (vLLM's prefix/read offsets): the text of
`ids[prefix:read]` was already emitted, so the new text is what `ids[prefix:]` adds to it. While the
window ends in an incomplete UTF-8 sequence (decoders show it as U+FFFD), only the text before it
is emitted and the bytes wait for the next token. Decoding the window rather than single tokens keeps SentencePiece
spaces right: "▁" is a space except at the very start, and byte-fallback tokens only form text
together.
"""
from __future__ import annotations

from corral.tokenizer.tokenizer import Tokenizer

REPLACEMENT = "\ufffd"
# Prompt ids kept as left context for the first output token.
CONTEXT_TOKENS = 5


class IncrementalDetokenizer:
    """Streams the text of token ids.

    Contract: the concatenation of every `add(...)` result followed by `flush()` equals
    `tokenizer.decode(all ids added, skip_special_tokens)`. With `prompt_ids`, the last prompt
    tokens serve as left context only (the first output token keeps its leading space, as in
    decoding prompt and output together) and are never emitted.
    """

    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = True,
                 prompt_ids: list[int] | None = None):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self._ids: list[int] = list(prompt_ids[-CONTEXT_TOKENS:]) if prompt_ids else []
        self._prefix = 0  # ids[prefix:read] decode to text already emitted (or context)
        self._read = len(self._ids)
        self._held = 0  # characters of the text after ids[:read] already emitted ahead of a split character

    @property
    def token_ids(self) -> list[int]:
        """The prompt context ids (if any) followed by every id added so far."""
        return self._ids

    def add(self, token_ids: list[int]) -> str:
        """Take newly generated ids; return the text they complete (possibly "")."""
        self._ids.extend(token_ids)
        return self._emit(final=False)

    def flush(self) -> str:
        """Return whatever is still held back (an incomplete character becomes U+FFFD)."""
        return self._emit(final=True)

    def _emit(self, final: bool) -> str:
        if self._read == len(self._ids):
            return ""
        decode = self.tokenizer.decode
        seen = decode(self._ids[self._prefix:self._read], self.skip_special_tokens)
        new = decode(self._ids[self._prefix:], self.skip_special_tokens)[len(seen):]
        if not final and new.endswith(REPLACEMENT):
            # A character still waits for its remaining bytes: emit only the text before it.
            ready = new.rstrip(REPLACEMENT)
            delta = ready[self._held:]
            self._held = max(self._held, len(ready))
            return delta
        if not final and not new:
            return ""
        delta = new[self._held:]
        # The window's left edge moves to the ids emitted last time: they stay as context.
        self._prefix, self._read, self._held = self._read, len(self._ids), 0
        return delta

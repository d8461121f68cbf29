"""Tokenize a prompt with its length limit in mind: a text far too long for the context is
refused from a prefix, before the whole of it is tokenized.

A multi-megabyte prompt for a model with a context of a few thousand tokens would otherwise cost
seconds of CPU and a large list of ids just to learn that it does not fit. The count of a prefix
is a lower bound of the whole text's count up to a few tokens where the prefix cuts a word (or an
added token) in two, so a prefix over the limit by more than PREFIX_MARGIN tokens settles it.
"""
from __future__ import annotations

from typing import Any

from corral.errors import ContextLengthError, ValidationError

PROBE_CHARS_PER_TOKEN = 16  # a prefix of this many characters per allowed token is probed first
PREFIX_MARGIN = 64  # tokens a cut can add to a prefix's count


def check_text(text: str, param: str = "prompt") -> None:
    """ValidationError when `text` is not valid Unicode (a lone UTF-16 surrogate from a JSON escape
    such as "\\ud800"), which no tokenizer can encode."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValidationError(param, f"contains a lone UTF-16 surrogate (U+{ord(text[e.start]):04X}) at character "
                                     f"{e.start}, which is not valid Unicode; send valid UTF-8 text") from None


def too_long(num_tokens: int | str, max_tokens: int, param: str = "prompt") -> ContextLengthError:
    return ContextLengthError(
        f"the prompt has {num_tokens} tokens but the model's context holds {max_tokens + 1} (prompt plus at "
        "least one generated token); shorten the prompt", param)


def encode_prompt(tokenizer: Any, text: str, max_tokens: int, add_special_tokens: bool = True,
                  param: str = "prompt") -> list[int]:
    """Token ids of `text`; ContextLengthError when it has more than `max_tokens` tokens."""
    check_text(text, param)
    probe_chars = max(max_tokens, 1) * PROBE_CHARS_PER_TOKEN
    if len(text) > probe_chars:
        prefix_tokens = len(tokenizer.encode(text[:probe_chars], add_special_tokens=False))
        if prefix_tokens > max_tokens + PREFIX_MARGIN:
            raise too_long(f"more than {max_tokens}", max_tokens, param)
    ids = list(tokenizer.encode(text, add_special_tokens=add_special_tokens))
    if len(ids) > max_tokens:
        raise too_long(len(ids), max_tokens, param)
    return ids

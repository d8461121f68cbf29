"""The tokenizer every other layer uses: text <-> token ids, special tokens, chat template.

One class for both sources: `Tokenizer.from_hf_dir(folder)` (tokenizer.json, or tokenizer.model,
with tokenizer_config.json and generation_config.json) and `Tokenizer.from_gguf(gguf_file)`
(`tokenizer.ggml.*` metadata). Both build a `tokenizers` engine; this class adds what the model
files say about BOS/EOS and chat formatting, so that `encode` adds BOS only when the model asks for
it and `eos_token_ids` holds every token that ends a turn. A byte-level GGUF vocabulary keeps its
added tokens (control, user-defined) in an AddedTokens table rather than in the engine: this class
then cuts them out of the text before the engine encodes it, and decodes them itself.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from corral.tokenizer.added_tokens import NORMAL, SPECIAL, AddedTokens
from corral.tokenizer.byte_level import piece_to_bytes

PIECE_KINDS = ("byte_level", "spm", "text")


class Tokenizer:
    """Text <-> ids for one model.

    Contracts:
      - `encode(text)` never adds BOS/EOS unless the model says so (`add_bos`/`add_eos`) and
        `add_special_tokens` is true; special tokens written in `text` are recognized as such.
      - `decode` is lossless (no clean-up of spaces around punctuation), so incremental decoding
        can reproduce it exactly; invalid UTF-8 becomes U+FFFD.
      - `eos_token_ids` contains `eos_token_id` (if any) and every end-of-turn token of the model.
    """

    def __init__(
        self,
        engine: Any,
        *,
        source: str,
        piece_kind: str,
        bos_token_id: int | None,
        eos_token_id: int | None,
        add_bos: bool,
        add_eos: bool = False,
        extra_eos_ids: Iterable[int] = (),
        chat_templates: Mapping[str, str] | None = None,
        unk_token_id: int | None = None,
        pad_token_id: int | None = None,
        added_tokens: AddedTokens | None = None,
        vocab_size: int | None = None,
    ):
        """`added_tokens`: the added tokens, when they are kept out of the engine (byte-level GGUF
        vocabularies); `vocab_size` is then the number of ids, which the engine alone cannot tell."""
        if piece_kind not in PIECE_KINDS:
            raise ValueError(f"piece_kind must be one of {PIECE_KINDS}, not {piece_kind!r}")
        self.engine = engine
        self.added_tokens = added_tokens
        self._vocab_size = vocab_size
        self.source = source
        self.piece_kind = piece_kind
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.unk_token_id = unk_token_id
        self.pad_token_id = pad_token_id
        self.add_bos = bool(add_bos and bos_token_id is not None)
        self.add_eos = bool(add_eos and eos_token_id is not None)
        eos = {i for i in extra_eos_ids if 0 <= i < self.vocab_size}
        if eos_token_id is not None:
            eos.add(eos_token_id)
        self.eos_token_ids: frozenset[int] = frozenset(eos)
        self.chat_templates: dict[str, str] = dict(chat_templates or {})
        self._special_ids = frozenset(
            i for i, tok in engine.get_added_tokens_decoder().items() if tok.special
        )

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_hf_dir(cls, path: str | Path) -> "Tokenizer":
        """Load from a Hugging Face model folder. Raises TokenizerError naming the folder when it
        has neither tokenizer.json nor tokenizer.model."""
        from corral.tokenizer.hf_loader import load_hf_tokenizer

        return load_hf_tokenizer(Path(path))

    @classmethod
    def from_path(cls, path: str | Path) -> "Tokenizer":
        """A model folder (Hugging Face files) or a .gguf file."""
        path = Path(path)
        return cls.from_gguf(path) if path.is_file() else cls.from_hf_dir(path)

    @classmethod
    def from_gguf(cls, gguf: Any) -> "Tokenizer":
        """Load from a `corral.loader.gguf_file.GGUFFile` (or a path to a .gguf file)."""
        from corral.tokenizer.gguf_loader import load_gguf_tokenizer

        if isinstance(gguf, (str, Path)):
            from corral.loader.gguf_file import GGUFFile

            gguf = GGUFFile(gguf)
        return load_gguf_tokenizer(gguf.metadata, str(gguf.path))

    # -- vocabulary -------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included."""
        if self._vocab_size is not None:
            return self._vocab_size
        return self.engine.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def bos_token(self) -> str | None:
        return self._text_of(self.bos_token_id)

    @property
    def eos_token(self) -> str | None:
        return self._text_of(self.eos_token_id)

    @property
    def unk_token(self) -> str | None:
        return self._text_of(self.unk_token_id)

    @property
    def pad_token(self) -> str | None:
        return self._text_of(self.pad_token_id)

    def id_to_piece(self, token_id: int) -> str | None:
        """The vocabulary entry as stored (byte-level alphabet or "▁" spaces), None if out of range."""
        if self.added_tokens is not None and self.added_tokens.kind(token_id) != NORMAL:
            return self.added_tokens.text(token_id)
        return self.engine.id_to_token(token_id)

    def piece_to_id(self, piece: str) -> int | None:
        if self.added_tokens is not None:
            token_id = self.added_tokens.find(piece)
            if token_id is not None:
                return token_id
        return self.engine.token_to_id(piece)

    def is_special(self, token_id: int) -> bool:
        """True for control tokens (BOS, EOS, `<|im_start|>`...), which decoding can skip."""
        if self.added_tokens is not None and self.added_tokens.kind(token_id) == SPECIAL:
            return True
        return token_id in self._special_ids

    def token_to_bytes(self, token_id: int) -> bytes:
        """The bytes this token adds to the output text (special tokens: their text). An SPM
        token's "▁" is a space here, including a leading one that `decode` would strip."""
        piece = self.id_to_piece(token_id)
        if piece is None:
            return b""
        if self.is_special(token_id):
            return piece.encode("utf-8")
        if self.piece_kind == "byte_level":
            return piece_to_bytes(piece)
        if self.piece_kind == "spm":
            if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
                try:
                    return bytes([int(piece[3:5], 16)])
                except ValueError:
                    pass
            return piece.replace("▁", " ").encode("utf-8")
        return piece.encode("utf-8")

    # -- text -------------------------------------------------------------------------------

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text`, with BOS/EOS added as the model asks when `add_special_tokens`."""
        if self.added_tokens is None:
            ids = self.engine.encode(text, add_special_tokens=False).ids
        else:
            ids = []
            for piece in self.added_tokens.split(text):
                if isinstance(piece, int):
                    ids.append(piece)
                else:
                    ids.extend(self.engine.encode(piece, add_special_tokens=False).ids)
        if add_special_tokens:
            if self.add_bos:
                ids.insert(0, self.bos_token_id)
            if self.add_eos:
                ids.append(self.eos_token_id)
        return ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Text of `ids`; special tokens are dropped when `skip_special_tokens`."""
        if self.added_tokens is None:
            return self.engine.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)
        # As `tokenizers` decodes added tokens: verbatim, each run of other ids through the decoder.
        added, decode = self.added_tokens, self.engine.decode
        parts: list[str] = []
        run: list[int] = []
        for i in ids:
            i = int(i)
            kind = added.kind(i)
            if kind == NORMAL:
                run.append(i)
            elif not (skip_special_tokens and kind == SPECIAL):
                if run:
                    parts.append(decode(run, skip_special_tokens=False))
                    run = []
                parts.append(added.text(i))
        if run:
            parts.append(decode(run, skip_special_tokens=False))
        return "".join(parts)

    # -- chat -------------------------------------------------------------------------------

    @property
    def chat_template(self) -> str | None:
        """The model's default chat template (Jinja source), None if it has none."""
        return self.chat_templates.get("default")

    def apply_chat_template(self, messages: list[Any], add_generation_prompt: bool = True,
                            tools: list[Any] | None = None, **extra: Any) -> str:
        """Render `messages` to a prompt string exactly as transformers' `apply_chat_template`
        does (tokenize=False). Uses the "tool_use" template when tools are given and the model
        has one. Raises ChatTemplateError when the model has no template or the template rejects
        the conversation."""
        from corral.tokenizer.chat_template import render_chat_template

        template = self.chat_template
        if tools and "tool_use" in self.chat_templates:
            template = self.chat_templates["tool_use"]
        # Like transformers, only the special tokens the model has are defined in the template.
        variables = {}
        for name in ("bos_token", "eos_token", "unk_token", "pad_token"):
            if getattr(self, name) is not None:
                variables[name] = getattr(self, name)
        variables.update(extra)
        return render_chat_template(template, messages, add_generation_prompt=add_generation_prompt,
                                    tools=tools, **variables)

    def _text_of(self, token_id: int | None) -> str | None:
        return None if token_id is None else self.id_to_piece(token_id)

    def __repr__(self) -> str:
        return (f"Tokenizer({self.source!r}, vocab_size={self.vocab_size}, bos={self.bos_token!r}, "
                f"eos={self.eos_token!r}, add_bos={self.add_bos})")

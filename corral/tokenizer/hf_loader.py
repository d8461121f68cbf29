"""Build a Tokenizer from a Hugging Face model folder.

Files read: tokenizer.json (the engine; or tokenizer.model, converted like transformers does),
tokenizer_config.json (special tokens, add_bos_token/add_eos_token, chat_template as a string or a
list of named templates), chat_template.jinja / chat_template.json, generation_config.json (extra
end-of-generation ids).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from corral.errors import TokenizerError
from corral.tokenizer.token_types import END_OF_TURN_TEXTS
from corral.tokenizer.tokenizer import Tokenizer


def load_hf_tokenizer(folder: Path) -> Tokenizer:
    """Raises TokenizerError (naming `folder`) when it has no tokenizer or a broken one."""
    if not folder.is_dir():
        raise TokenizerError(folder, "not a folder; pass the model folder that holds tokenizer.json")
    config = _read_json(folder / "tokenizer_config.json") or {}
    engine, piece_kind = _engine(folder, config)

    def token_id(key: str) -> int | None:
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        return engine.token_to_id(value) if isinstance(value, str) else None

    bos_id, eos_id = token_id("bos_token"), token_id("eos_token")
    add_bos, add_eos = config.get("add_bos_token"), config.get("add_eos_token")
    if not isinstance(add_bos, bool) or not isinstance(add_eos, bool):
        probed_bos, probed_eos = _post_processor_adds(engine, bos_id, eos_id, folder)
        add_bos = add_bos if isinstance(add_bos, bool) else probed_bos
        add_eos = add_eos if isinstance(add_eos, bool) else probed_eos

    extra_eos = set(_generation_eos_ids(folder))
    for i, tok in engine.get_added_tokens_decoder().items():
        if tok.special and tok.content in END_OF_TURN_TEXTS:
            extra_eos.add(i)
    return Tokenizer(
        engine,
        source=str(folder),
        piece_kind=piece_kind,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        add_bos=add_bos,
        add_eos=add_eos,
        extra_eos_ids=extra_eos,
        chat_templates=_chat_templates(folder, config),
        unk_token_id=token_id("unk_token"),
        pad_token_id=token_id("pad_token"),
    )


def _engine(folder: Path, config: dict) -> tuple[Any, str]:
    from tokenizers import AddedToken, Tokenizer as Engine

    path = folder / "tokenizer.json"
    if path.is_file():
        try:
            engine = Engine.from_file(str(path))
        except Exception as e:  # the Rust library reports every parse problem as a plain Exception
            raise TokenizerError(path, f"cannot parse tokenizer.json ({str(e)[:300]}); re-download it") from None
        # Some repositories ship tokenizer.json with truncation or padding switched on.
        engine.no_truncation()
        engine.no_padding()
        return engine, _piece_kind(json.loads(engine.to_str()))
    path = folder / "tokenizer.model"
    if path.is_file():
        from corral.tokenizer.spm_engine import build_spm_engine
        from corral.tokenizer.spm_model import read_spm_model

        model = read_spm_model(path)
        try:
            engine = build_spm_engine(model.pieces, model.scores, model.types, model.add_dummy_prefix)
            added = config.get("added_tokens_decoder") or {}
            for index in sorted(added, key=int):
                tok = added[index]
                if int(index) >= engine.get_vocab_size() and isinstance(tok, dict) and isinstance(tok.get("content"), str):
                    engine.add_tokens([AddedToken(tok["content"], special=bool(tok.get("special")), normalized=False)])
        except Exception as e:  # the Rust library reports a bad vocabulary as a plain Exception
            raise TokenizerError(folder, f"cannot build the tokenizer from tokenizer.model and tokenizer_config.json "
                                         f"({type(e).__name__}: {str(e)[:300]}); re-download them") from None
        return engine, "spm"
    raise TokenizerError(folder, "no tokenizer.json or tokenizer.model in this folder; download the "
                                 "model's tokenizer files (tokenizer.json, tokenizer_config.json) into it")


def _piece_kind(spec: dict) -> str:
    """How vocabulary pieces spell bytes: told by the decoder of a tokenizer.json."""
    text = json.dumps(spec.get("decoder") or {})
    if '"ByteLevel"' in text:
        return "byte_level"
    if '"ByteFallback"' in text or '"Metaspace"' in text or "\u2581" in text or "\\u2581" in text:
        return "spm"
    return "text"


def _post_processor_adds(engine: Any, bos_id: int | None, eos_id: int | None, folder: Path) -> tuple[bool, bool]:
    """Whether the tokenizer.json post-processor puts BOS first / EOS last."""
    try:
        with_special = engine.encode("a", add_special_tokens=True).ids
        plain = engine.encode("a", add_special_tokens=False).ids
    except Exception as e:  # a post-processor that names tokens the vocabulary lacks
        raise TokenizerError(folder, f"the tokenizer cannot encode text ({str(e)[:200]}); "
                                                    "re-download tokenizer.json") from None
    if with_special == plain:
        return False, False
    return (bos_id is not None and with_special[:1] == [bos_id],
            eos_id is not None and with_special[-1:] == [eos_id])


def _generation_eos_ids(folder: Path) -> list[int]:
    generation = _read_json(folder / "generation_config.json") or {}
    value = generation.get("eos_token_id")
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int)]
    return []


def _chat_templates(folder: Path, config: dict) -> dict[str, str]:
    """name -> template; "default" is the one used without tools. Precedence as in transformers:
    chat_template.jinja, then tokenizer_config.json, then chat_template.json."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        templates = {"default": _read_text(jinja)}
        extra = folder / "additional_chat_templates"
        if extra.is_dir():
            for p in sorted(extra.glob("*.jinja")):
                templates[p.stem] = _read_text(p)
        return templates
    value = config.get("chat_template")
    if value is None:
        value = (_read_json(folder / "chat_template.json") or {}).get("chat_template")
    if isinstance(value, str):
        return {"default": value}
    if isinstance(value, list):
        templates = {t["name"]: t["template"] for t in value
                     if isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("template"), str)}
        if templates and "default" not in templates:
            templates["default"] = next(iter(templates.values()))
        return templates
    return {}


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(_read_text(path))
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise TokenizerError(path, f"not valid JSON ({str(e)[:300] or type(e).__name__}); re-download it") from None
    return value if isinstance(value, dict) else None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TokenizerError(path, f"cannot be read as UTF-8 text ({str(e)[:200]}); re-download it") from None

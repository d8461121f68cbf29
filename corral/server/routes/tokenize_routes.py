"""POST /tokenize and /detokenize: text or chat messages to token ids and back (vLLM, llama.cpp)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from corral.errors import ValidationError
from corral.server import tokenize_protocol as tp
from corral.server.model_lease import default_model_name, leased
from corral.server.state import get_state, require_api_key
from corral.server.streaming import json_response

router = APIRouter(dependencies=[Depends(require_api_key)])


def _text_and_special(body: tp.TokenizeRequest, tokenizer) -> tuple[str, bool]:
    """The text to encode and whether to add the model's special tokens (each server's default)."""
    given = [k for k in ("prompt", "content", "messages") if getattr(body, k) is not None]
    if len(given) != 1:
        raise ValidationError("prompt", "send exactly one of 'prompt', 'content' or 'messages'")
    explicit = body.add_special_tokens if body.add_special_tokens is not None else body.add_special
    if body.messages is not None:
        text = tokenizer.apply_chat_template(
            body.messages, add_generation_prompt=body.add_generation_prompt and not body.continue_final_message,
            tools=body.tools, **(body.chat_template_kwargs or {}))
        if body.continue_final_message and body.messages:
            last = body.messages[-1].get("content")
            if isinstance(last, str) and last and last in text:
                text = text[: text.rindex(last) + len(last)]
        return text, bool(explicit) if explicit is not None else False
    if body.prompt is not None:
        return body.prompt, explicit if explicit is not None else True
    return body.content, explicit if explicit is not None else False


def encode(engine, text: str, add_special_tokens: bool) -> list[int]:
    """Token ids as the engine will see them: an embedding engine adds its own special tokens
    (BERT's [CLS]/[SEP]) through `encode`; a generation engine through its tokenizer."""
    own = getattr(engine, "encode", None)
    if own is not None:
        return own(text, add_special_tokens)
    return engine.tokenizer.encode(text, add_special_tokens=add_special_tokens)


def _piece(tokenizer, token_id: int) -> str | list[int]:
    raw = tokenizer.token_to_bytes(token_id)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return list(raw)


@router.post("/tokenize")
async def tokenize(body: tp.TokenizeRequest, request: Request):
    manager = get_state(request).manager
    async with leased(manager, default_model_name(manager, body.model)) as model:
        tokenizer = model.engine.tokenizer
        text, special = _text_and_special(body, tokenizer)
        ids = encode(model.engine, text, special)
        tokens = [tp.TokenPiece(id=i, piece=_piece(tokenizer, i)) for i in ids] if body.with_pieces else ids
        strs = [tokenizer.id_to_piece(i) or "" for i in ids] if body.return_token_strs else None
        return json_response(tp.TokenizeResponse(tokens=tokens, count=len(ids), max_model_len=model.engine.max_model_len,
                                                 token_strs=strs))


@router.post("/detokenize")
async def detokenize(body: tp.DetokenizeRequest, request: Request):
    manager = get_state(request).manager
    async with leased(manager, default_model_name(manager, body.model)) as model:
        tokenizer = model.engine.tokenizer
        bad = [i for i in body.tokens if not 0 <= i < tokenizer.vocab_size]
        if bad:
            raise ValidationError("tokens", f"token id {bad[0]} is outside the vocabulary (0..{tokenizer.vocab_size - 1})")
        text = tokenizer.decode(body.tokens, skip_special_tokens=False)
        return json_response(tp.DetokenizeResponse(prompt=text, content=text))

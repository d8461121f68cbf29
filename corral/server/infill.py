"""Fill-in-the-middle prompts for llama.cpp's POST /infill and OpenAI's `suffix` on /v1/completions.

The layout is llama.cpp's (server `format_infill`), prefix-suffix-middle:
    [extra context] [BOS if the model adds one] FIM_PRE prefix prompt FIM_SUF suffix FIM_MID
where the extra context (`input_extra`: files of the project) is, with a file separator token,
`FIM_REP "myproject\\n"` then `FIM_SEP "{filename}\\n" {text}` per file and `FIM_SEP "filename\\n"` for
the current file; without one, each text follows a "\\n\\n--- snippet ---\\n\\n" line. Texts are
tokenized without BOS/EOS (unlike llama.cpp, special-token text inside them is still recognized).
A model without FIM tokens gets a 400 that says so.
"""
from __future__ import annotations

from typing import Any

from corral.errors import ValidationError
from corral.tokenizer.fim import FimTokens, find_fim_tokens

SNIPPET_SEPARATOR = "\n\n--- snippet ---\n\n"


def model_fim_tokens(model: Any) -> FimTokens:
    """FIM tokens of a loaded model (server LoadedModel); ValidationError when it has none."""
    tokenizer = model.engine.tokenizer
    metadata = None
    path = model.resolved.path
    if path.is_file() and path.suffix == ".gguf":
        from corral.loader.gguf_file import GGUFFile

        metadata = GGUFFile(path).metadata
    fim = find_fim_tokens(tokenizer, metadata)
    if fim is None:
        raise ValidationError("model", f"'{model.name}' has no fill-in-the-middle tokens (such as <|fim_prefix|>, "
                                       "<fim_prefix> or <PRE>); use a code model trained for infilling, "
                                       "e.g. Qwen2.5-Coder, StarCoder2 or CodeLlama")
    return fim


def build_infill_prompt(tokenizer: Any, fim: FimTokens, prefix: str, suffix: str, prompt: str = "",
                        extra: list[dict[str, Any]] | None = None) -> list[int]:
    """Token ids of the FIM prompt (see the module docstring); ValidationError for a malformed `extra`."""

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False) if text else []

    extra_ids: list[int] = []
    if extra:
        if fim.repo is not None:
            extra_ids += [fim.repo, *encode("myproject\n")]
        for i, chunk in enumerate(extra):
            if not isinstance(chunk, dict) or not isinstance(chunk.get("text", ""), str):
                raise ValidationError("input_extra", f"chunk {i} must be an object with a 'text' string")
            filename = chunk.get("filename") or "tmp"
            if fim.sep is not None:
                extra_ids += [fim.sep, *encode(f"{filename}\n")]
            else:
                extra_ids += encode(SNIPPET_SEPARATOR)
            extra_ids += encode(chunk.get("text", ""))
        if fim.sep is not None:
            extra_ids += [fim.sep, *encode("filename\n")]
    bos = [tokenizer.bos_token_id] if tokenizer.add_bos and tokenizer.bos_token_id is not None else []
    return [*extra_ids, *bos, fim.prefix, *encode(prefix), *encode(prompt), fim.suffix, *encode(suffix), fim.middle]


async def fim_prompts(manager: Any, model_name: str, prefixes: list[str], suffix: str) -> list[list[int]]:
    """FIM token ids for each prefix with `suffix`, from the named model's tokenizer (loaded if needed)."""
    from corral.server.model_lease import leased

    async with leased(manager, model_name) as model:
        fim = model_fim_tokens(model)
        return [build_infill_prompt(model.engine.tokenizer, fim, prefix=p, suffix=suffix) for p in prefixes]


async def completion_with_suffix(manager: Any, body: Any) -> Any:
    """An OpenAI CompletionRequest with `suffix` turned into FIM token-id prompts (one per prompt
    string) and `suffix` cleared, ready for the ordinary completion path."""
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValidationError("suffix", "needs the prompt as text (a string or a list of strings), not token ids")
    ids = await fim_prompts(manager, body.model, list(prompts), body.suffix)
    return body.model_copy(update={"prompt": ids, "suffix": None})

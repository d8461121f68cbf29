"""A model's default options under a request's own: the one place they meet and become SamplingParams.

Defaults are Ollama option names (`temperature`, `top_p`, `num_predict`, `stop`, ...), layered
from the bottom: what the model's files recommend (`corral.store.sampling_defaults`), then its
Modelfile PARAMETERs (both gathered by `corral.store.resolve`), then the request. Every entry point
goes through here: the Ollama and OpenAI routes, `corral run`, and `LLM.get_default_sampling_params`.
"""
from __future__ import annotations

from typing import Any, Mapping

from corral.core.sampling_params import SamplingParams
from corral.errors import ValidationError

# Ollama option -> SamplingParams field
OPTION_FIELDS = {
    "temperature": "temperature", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p", "seed": "seed",
    "stop": "stop", "repeat_penalty": "repetition_penalty", "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
_FIELD_OPTIONS = {field: option for option, field in OPTION_FIELDS.items()} | {"max_tokens": "num_predict"}


def merge_options(model_options: Mapping[str, Any], request_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The model's options with the request's on top; a request value of None leaves the model's."""
    merged = dict(model_options)
    merged.update({k: v for k, v in (request_options or {}).items() if v is not None})
    return merged


def options_from_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """SamplingParams field values (OpenAI's names: `repetition_penalty`, `max_tokens`) as Ollama
    options, for `merge_options`; fields without an Ollama name are left out."""
    return {_FIELD_OPTIONS[k]: v for k, v in fields.items() if k in _FIELD_OPTIONS}


def max_tokens_for(num_predict: Any) -> int | None:
    """Ollama's num_predict as max_tokens: unset, -1 (no limit) and -2 (fill the context) mean none."""
    if num_predict is None or num_predict in (-1, -2):
        return None
    if isinstance(num_predict, int) and not isinstance(num_predict, bool) and num_predict > 0:
        return num_predict
    raise ValidationError("num_predict", f"must be a positive integer, -1 or -2, got {num_predict!r}")


def sampling_params(options: Mapping[str, Any], **fields: Any) -> SamplingParams:
    """SamplingParams from (merged) Ollama options; `fields` are SamplingParams fields that have no
    Ollama name (n, logprobs, min_tokens, ...). Options without a sampling meaning (num_ctx, ...)
    are ignored here."""
    values: dict[str, Any] = {
        field: options[option] for option, field in OPTION_FIELDS.items() if options.get(option) is not None
    }
    if isinstance(values.get("stop"), str):
        values["stop"] = [values["stop"]]
    values["max_tokens"] = max_tokens_for(options.get("num_predict"))
    return SamplingParams(**{**values, **fields})

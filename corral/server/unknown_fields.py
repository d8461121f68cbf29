"""No silent drops: a generation request field corral does not implement is a 400 that names it,
unless it changes nothing on a local server (then it is accepted and ignored, as listed here and
in docs/structured-output.md), or it is sent with its neutral value.

The request types keep unknown fields (`extra="allow"`); the conversions call these checks first.
"""
from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel

from corral.errors import ValidationError

# Fields that change nothing for a local server.
OPENAI_IGNORED = frozenset({
    "store",  # OpenAI keeps the completion for its dashboard; nothing is kept here
    "metadata",  # tags for that dashboard
    "service_tier",  # OpenAI's billing and latency tier
    "prompt_cache_key",  # prefix caching here is automatic
    "safety_identifier",  # OpenAI's abuse monitoring id
    "guided_decoding_backend",  # vLLM: which grammar library; there is one here
    "priority",  # vLLM: scheduling priority when its priority scheduler is on (off by default)
    "request_id",  # vLLM: a caller-chosen id for its logs
})
OLLAMA_IGNORED = frozenset({"truncate", "shift"})  # corral refuses a prompt too long instead
OLLAMA_OPTIONS_IGNORED = frozenset({
    "num_keep", "num_batch", "num_gpu", "main_gpu", "num_thread", "numa", "use_mmap", "use_mlock",
    "low_vram", "f16_kv", "vocab_only", "logits_all",  # memory, threads and devices: the server's choice
    "penalize_newline",  # removed from Ollama; it no longer does anything there either
})

_NEUTRAL: dict[str, Callable[[Any], bool]] = {
    # OpenAI / vLLM
    "logit_bias": lambda v: not v,
    "modalities": lambda v: v is None or v == ["text"],
    "use_beam_search": lambda v: not v,
    "echo": lambda v: not v,
    # Ollama options
    "typical_p": lambda v: v is None or v == 1,
    "tfs_z": lambda v: v is None or v == 1,
    "mirostat": lambda v: not v,
    "mirostat_tau": lambda v: True,  # only read when mirostat is on
    "mirostat_eta": lambda v: True,
}


def _check(extra: dict[str, Any] | None, ignored: frozenset[str], prefix: str, why: str) -> None:
    for name, value in (extra or {}).items():
        if name in ignored:
            continue
        check = _NEUTRAL.get(name)
        if check is not None and check(value):
            continue
        raise ValidationError(prefix + name, f"is not supported by corral; {why}")


def reject_unknown_openai(req: BaseModel) -> None:
    why = "remove it (docs/structured-output.md lists the fields accepted and ignored)"
    _check(req.model_extra, OPENAI_IGNORED, "", why)
    options = getattr(req, "stream_options", None)
    if options is not None:
        _check(options.model_extra, frozenset(), "stream_options.", why)


def reject_unknown_ollama(req: BaseModel) -> None:
    why = "remove it (docs/structured-output.md lists the fields accepted and ignored)"
    _check(req.model_extra, OLLAMA_IGNORED, "", why)
    options = getattr(req, "options", None)
    if options is not None:
        _check(options.model_extra, OLLAMA_OPTIONS_IGNORED, "options.", why)

"""Ollama API request and response types, following https://github.com/ollama/ollama/blob/main/docs/api.md.

Durations in responses are nanoseconds; timestamps are RFC 3339 strings. Requests ignore unknown
fields; `stream` defaults to true as in Ollama. Optional response fields Ollama omits when
empty are dropped from the JSON with `exclude_if`.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from corral.server.body_values import check_body_values


def _none(value: Any) -> bool:
    return value is None


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _check_values(cls, data: Any) -> Any:
        return check_body_values(data)


class Options(_Request):
    """Runtime options (`options` in a request, PARAMETER lines in a Modelfile)."""

    model_config = ConfigDict(extra="allow")  # unknown fields: see corral/server/unknown_fields.py

    num_predict: int | None = None  # -1: no limit, -2: until the context is full
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    seed: int | None = None
    stop: list[str] | str | None = None
    repeat_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    num_ctx: int | None = None  # the context length to run at: a model loaded at another is reloaded


class Message(_Request):
    role: str
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_name: str | None = None


class GenerateRequest(_Request):
    model_config = ConfigDict(extra="allow")  # unknown fields: see corral/server/unknown_fields.py
    model: str
    prompt: str | None = None
    system: str | None = None
    raw: bool = False
    context: list[int] | None = None
    stream: bool = True
    options: Options | None = None
    keep_alive: int | float | str | None = None  # seconds or a duration: see parse_keep_alive
    images: list[str] | None = None
    suffix: str | None = None  # text after the insertion point: fill in the middle
    format: str | dict[str, Any] | None = None  # "json" or a JSON schema
    think: bool | None = None  # thinking models: think (True) or not (False); `thinking` in the reply


class ChatRequest(_Request):
    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[Message] | None = None
    tools: list[dict[str, Any]] | None = None
    stream: bool = True
    options: Options | None = None
    keep_alive: int | float | str | None = None  # seconds or a duration: see parse_keep_alive
    format: str | dict[str, Any] | None = None  # "json" or a JSON schema
    think: bool | None = None


class _Final(BaseModel):
    """Fields of the last chunk (`done: true`); absent from the others."""

    model: str
    created_at: str
    done: bool = False
    done_reason: str | None = Field(default=None, exclude_if=_none)
    total_duration: int | None = Field(default=None, exclude_if=_none)
    load_duration: int | None = Field(default=None, exclude_if=_none)
    prompt_eval_count: int | None = Field(default=None, exclude_if=_none)
    prompt_eval_duration: int | None = Field(default=None, exclude_if=_none)
    eval_count: int | None = Field(default=None, exclude_if=_none)
    eval_duration: int | None = Field(default=None, exclude_if=_none)


class GenerateResponse(_Final):
    response: str = ""
    thinking: str | None = Field(default=None, exclude_if=_none)
    context: list[int] | None = Field(default=None, exclude_if=_none)


class ResponseMessage(BaseModel):
    role: str = "assistant"
    content: str = ""
    thinking: str | None = Field(default=None, exclude_if=_none)
    tool_calls: list[dict[str, Any]] | None = Field(default=None, exclude_if=_none)  # [{"function": {name, arguments}}]


class ChatResponse(_Final):
    message: ResponseMessage


class ModelDetails(BaseModel):
    parent_model: str = ""
    format: str
    family: str
    families: list[str]
    parameter_size: str
    quantization_level: str


class ListedModel(BaseModel):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: ModelDetails
    damaged: str | None = Field(default=None, exclude_if=_none)  # corral: what is wrong with a broken store model


class ListResponse(BaseModel):
    models: list[ListedModel]


class RunningModel(BaseModel):
    name: str
    model: str
    size: int
    digest: str
    details: ModelDetails
    expires_at: str
    size_vram: int
    context_length: int
    # corral: where and how it runs (device, dtype, attention_backend, kv_cache_dtype, weights)
    placement: dict | None = Field(default=None, exclude_if=_none)


class ProcessResponse(BaseModel):
    models: list[RunningModel]


class ShowRequest(_Request):
    model: str | None = None
    name: str | None = None  # older clients send `name`
    verbose: bool = False


class ShowResponse(BaseModel):
    license: str = ""
    modelfile: str = ""
    parameters: str = ""
    template: str = ""
    system: str | None = Field(default=None, exclude_if=_none)
    details: ModelDetails
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str


class PullRequest(_Request):
    """`model` (or the older `name`): hf.co/ORG/REPO[:QUANT] or ORG/REPO. `insecure` is accepted
    and ignored (the Hub is always reached over the scheme HF_ENDPOINT names)."""

    model: str | None = None
    name: str | None = None
    insecure: bool = False
    stream: bool = True


class DeleteRequest(_Request):
    model: str | None = None
    name: str | None = None  # older clients send `name`


class CopyRequest(_Request):
    source: str
    destination: str


class CreateRequest(_Request):
    """Either Ollama's JSON form (`from` plus settings) or the older `modelfile` text.

    `from` names a store model, or an absolute path on the server's machine to a .gguf file or an
    HF folder. `parameters` use Modelfile names and types (`stop` may be a list). `files`,
    `adapters` and `quantize` (uploaded blobs, LoRA, re-quantizing) are refused.
    """

    model: str | None = None
    name: str | None = None  # older clients send `name`
    from_: str | None = Field(default=None, alias="from")
    modelfile: str | None = None
    system: str | None = None
    template: str | None = None
    parameters: dict[str, Any] | None = None
    messages: list[Message] | None = None
    license: str | list[str] | None = None
    files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    quantize: str | None = None
    stream: bool = True


class ProgressResponse(BaseModel):
    """One line of a /api/pull or /api/create stream; byte counts only while a file downloads."""

    status: str
    digest: str | None = Field(default=None, exclude_if=_none)
    total: int | None = Field(default=None, exclude_if=_none)
    completed: int | None = Field(default=None, exclude_if=_none)


class StatusResponse(BaseModel):
    status: str


class VersionResponse(BaseModel):
    version: str


class ErrorResponse(BaseModel):
    error: str

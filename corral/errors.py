"""Errors a user can cause. Each carries a message that says what is wrong and what to do.

The server maps them to 4xx responses (OpenAI-style on /v1, Ollama-style on /api); the CLI
prints the message without a traceback. Anything else escaping is a bug in corral.
"""
from __future__ import annotations


class CorralError(Exception):
    """Base of every error a user can cause. `status` is the HTTP status the server answers."""

    status = 400
    code = "invalid_request_error"

    def __init__(self, message: str):
        # Messages quote what the user sent; a lone surrogate there could not be encoded as UTF-8
        # in a response or on a terminal, so it is written as an escape (\ud800).
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        super().__init__(message)
        self.message = message


class ModelFileError(CorralError):
    """A model file or folder is missing, truncated, corrupt or of an unknown format."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


class UnsupportedModelError(ModelFileError):
    """The file is valid but uses an architecture or tensor type corral cannot run."""


class TokenizerError(ModelFileError):
    """The tokenizer is missing or cannot be built from the model's files."""


class ChatTemplateError(CorralError):
    """The model has no chat template, or rendering it failed (e.g. `raise_exception` was called)."""


class ValidationError(CorralError):
    """A request parameter has an invalid value. `param` names the field."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param


class ContextLengthError(ValidationError):
    """The prompt (plus requested output) does not fit the model's context or the KV cache."""

    def __init__(self, message: str, param: str = "messages"):
        super().__init__(param, message)
        self.message = message
        self.args = (message,)


class ModelNotFoundError(CorralError):
    """No model of that name is in the store and no such path exists."""

    status = 404
    code = "model_not_found"


class StoreError(CorralError):
    """A model-store operation failed (bad name, corrupt blob, failed download); the store is unchanged."""


class RemoteModelNotFoundError(StoreError):
    """The Hub has no such repository, revision or quantization."""

    status = 404
    code = "model_not_found"


class HubUnavailableError(StoreError):
    """The Hub (or the mirror at HF_ENDPOINT) cannot be reached or answered with an error."""

    status = 502
    code = "bad_gateway"


class OutOfMemoryError(CorralError):
    """The model or its KV cache does not fit the memory budget."""

    status = 507
    code = "insufficient_memory"


class ModelKindError(CorralError):
    """The model cannot do what the request asks: an embedding model asked to generate text, or a
    text-generation model asked for embeddings. The message names the model's kind."""

"""Ollama's /api/create body -> Modelfile text for `corral.store.create` (a pure function).

The JSON form is rendered as a Modelfile and parsed back by the store, so both forms go through
the same checks (parameter names and types, message roles, a FROM line).
"""
from __future__ import annotations

from pathlib import PurePath

from corral.errors import ValidationError
from corral.server import ollama_protocol as ol
from corral.store.modelfile import parse_modelfile, render_modelfile


def target_name(body: ol.CreateRequest) -> str:
    name = body.model or body.name
    if not name:
        raise ValidationError("model", "is required: the name of the model to create")
    return name


def modelfile_text(body: ol.CreateRequest) -> str:
    """Modelfile text for the request; ValidationError for what this server cannot create."""
    for field, value in (("files", body.files), ("adapters", body.adapters)):
        if value:
            raise ValidationError(field, "uploaded blobs and adapters are not supported; create FROM a store "
                                         "model or an absolute path on the server's machine")
    if body.quantize:
        raise ValidationError("quantize", "re-quantizing is not supported; pull the quantization you want")
    if body.modelfile is not None:
        if body.from_ is not None:
            raise ValidationError("from", "give either `from` or `modelfile`, not both")
        text = body.modelfile
    elif body.from_:
        text = _render(body)
    else:
        raise ValidationError("from", "is required: a store model name or an absolute path to a model")
    _check_from(parse_modelfile(text).from_)
    return text


def _render(body: ol.CreateRequest) -> str:
    license = "\n\n".join(body.license) if isinstance(body.license, list) else body.license
    params: dict = {}
    for key, value in (body.parameters or {}).items():
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, (dict, list)) or v is None for v in values):
            raise ValidationError(f"parameters.{key}", f"must be a number, a string or a boolean, got {value!r}")
        params[key] = values if key == "stop" or len(values) > 1 else values[0]
    messages = [{"role": m.role, "content": m.content} for m in body.messages or []]
    return render_modelfile(body.from_, params, body.system, body.template, messages, license)


def _check_from(from_: str) -> None:
    """A relative path would resolve against the server's working folder: refuse it."""
    looks_like_path = from_.startswith(("./", "../", "~", ".\\")) or from_.lower().endswith(".gguf")
    if looks_like_path and not PurePath(from_).is_absolute():
        raise ValidationError("from", f"{from_!r} is a relative path; give an absolute path on the server's machine "
                                      "or a store model name")

"""Where `corral run` sends a conversation: a running corral server, or an engine in this process.

Both take the conversation the user typed (plus a system message if they set one) and the
options they set, and apply the model's Modelfile defaults the same way: MESSAGE turns first,
the SYSTEM prompt unless the conversation has a system message, PARAMETERs under the user's
options. The server does that itself (as Ollama's does); the local backend does it here.
Both stream the reply as text pieces and stop cleanly when the caller stops iterating (Ctrl-C).
"""
from __future__ import annotations

import contextlib
import json
import signal
import threading
from typing import Any, Iterator

from corral import envs
from corral.core.model_options import merge_options
from corral.errors import CorralError, ValidationError

# Ollama option names accepted by `/set parameter` -> (SamplingParams field, type).
OPTION_FIELDS = {
    "temperature": ("temperature", float),
    "top_k": ("top_k", int),
    "top_p": ("top_p", float),
    "min_p": ("min_p", float),
    "seed": ("seed", int),
    "num_predict": ("max_tokens", int),
    "repeat_penalty": ("repetition_penalty", float),
    "presence_penalty": ("presence_penalty", float),
    "frequency_penalty": ("frequency_penalty", float),
    "stop": ("stop", str),
    "num_ctx": (None, int),
}
LOCAL_CONTEXT = 4096  # tokens, for a model run in-process without a Modelfile num_ctx


def server_url() -> str:
    host = envs.host()
    return host if host.startswith(("http://", "https://")) else f"http://{host}"


def server_is_running(timeout: float = 0.3) -> bool:
    import httpx

    try:
        return httpx.get(f"{server_url()}/api/version", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


class ServerBackend:
    """Streams from `/api/chat` of a running server (which loads the model on demand and applies
    its Modelfile defaults)."""

    where = "server"

    def __init__(self, model: str):
        self.model = model

    def chat(self, messages: list[dict], options: dict) -> Iterator[str]:
        import httpx

        body = {"model": self.model, "messages": messages, "options": options, "stream": True}
        headers = {"Authorization": f"Bearer {envs.api_key()}"} if envs.api_key() else {}
        with httpx.stream("POST", f"{server_url()}/api/chat", json=body, headers=headers, timeout=None) as r:
            if r.status_code != 200:
                r.read()
                raise CorralError(_error_text(r))
            for line in r.iter_lines():
                if not line.strip():
                    continue
                chunk = json.loads(line)
                if "error" in chunk:
                    raise CorralError(chunk["error"])
                piece = chunk.get("message", {}).get("content", "")
                if piece:
                    yield piece
                if chunk.get("done"):
                    return


class LocalBackend:
    """Runs the model in this process, one conversation at a time, with its Modelfile defaults."""

    where = "local"

    def __init__(self, model: str):
        from corral.engine.engine_args import EngineArgs
        from corral.engine.llm_engine import LLMEngine

        self.system, self.options, self.preset = model_defaults(model)
        num_ctx = self.options.get("num_ctx")
        try:
            args = EngineArgs(model=model, max_model_len=num_ctx or LOCAL_CONTEXT, max_num_seqs=1)
            self.engine = LLMEngine(args)
        except ValidationError as e:
            if num_ctx or e.param != "max_model_len":
                raise
            self.engine = LLMEngine(EngineArgs(model=model, max_num_seqs=1))  # its context is shorter

    def chat(self, messages: list[dict], options: dict) -> Iterator[str]:
        conversation = with_defaults(messages, self.system, self.preset)
        tok = self.engine.tokenizer
        text = tok.apply_chat_template(conversation, add_generation_prompt=True)
        ids = tok.encode(text, add_special_tokens=False)
        params = sampling_params_from_options(merge_options(self.options, options))
        rid = self.engine.add_request(ids, params, prompt_text=text)
        try:
            while not self.engine.is_finished(rid):
                with _sigint_deferred():  # Ctrl-C between engine calls, never inside one
                    delta = self.engine.pop_delta(rid) if rid in self.engine.step() else None
                if delta is not None and delta.outputs and delta.outputs[0].text:
                    yield delta.outputs[0].text
        finally:
            self.engine.abort(rid)  # no-op once finished; frees the KV blocks of a stopped reply


def model_defaults(model: str) -> tuple[str | None, dict[str, Any], list[dict]]:
    """SYSTEM, MESSAGE turns and options (the model files' recommended sampling under the
    Modelfile's PARAMETERs) for `model`."""
    from corral.errors import ModelNotFoundError, StoreError
    from corral.store import resolve

    try:
        resolved = resolve(model)
    except (ModelNotFoundError, StoreError):
        return None, {}, []  # the engine reports the problem when it loads
    return resolved.system, dict(resolved.params), [dict(m) for m in resolved.messages]


def with_defaults(messages: list[dict], system: str | None, preset: list[dict]) -> list[dict]:
    """Preset turns before `messages`; `system` first unless a system message is already there."""
    conversation = [*preset, *messages]
    if system and not any(m.get("role") == "system" for m in conversation):
        conversation.insert(0, {"role": "system", "content": system})
    return conversation


def sampling_params_from_options(options: dict):
    """SamplingParams from Ollama option names (num_predict -1/-2: until the context is full)."""
    from corral.core.model_options import sampling_params

    return sampling_params(options)


@contextlib.contextmanager
def _sigint_deferred():
    """Hold a SIGINT that arrives inside the block and raise KeyboardInterrupt after it, so an
    engine step is never cut half way (its scheduler and KV cache stay consistent)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


def _error_text(response) -> str:
    try:
        return response.json().get("error", response.text)
    except ValueError:
        return response.text

"""Where `corral run` sends a conversation: a running corral server, or an engine in this process.

Both stream the reply as text pieces and stop cleanly when the caller stops iterating (Ctrl-C).
"""
from __future__ import annotations

import json
from typing import Iterator

from corral import envs
from corral.errors import CorralError

# Ollama option names accepted by `/set parameter` -> SamplingParams fields.
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
    """Streams from `/api/chat` of a running server (which loads the model on demand)."""

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
    """Runs the model in this process, one conversation at a time."""

    def __init__(self, model: str, max_model_len: int | None = None):
        from corral.engine.engine_args import EngineArgs
        from corral.engine.llm_engine import LLMEngine

        self.engine = LLMEngine(EngineArgs(model=model, max_model_len=max_model_len or 4096, max_num_seqs=4))

    def chat(self, messages: list[dict], options: dict) -> Iterator[str]:
        tok = self.engine.tokenizer
        text = tok.apply_chat_template(messages, add_generation_prompt=True)
        ids = tok.encode(text, add_special_tokens=False)
        rid = self.engine.add_request(ids, sampling_params_from_options(options))
        try:
            while not self.engine.is_finished(rid):
                if rid in self.engine.step():
                    delta = self.engine.pop_delta(rid)
                    if delta is not None and delta.outputs and delta.outputs[0].text:
                        yield delta.outputs[0].text
        finally:
            if self.engine.has_unfinished():
                self.engine.abort(rid)


def sampling_params_from_options(options: dict):
    from corral.core.sampling_params import SamplingParams

    kwargs = {"max_tokens": None}
    for key, value in options.items():
        field = OPTION_FIELDS.get(key, (None,))[0]
        if field == "stop":
            kwargs["stop"] = value if isinstance(value, list) else [value]
        elif field:
            kwargs[field] = value
    if kwargs.get("max_tokens") is not None and kwargs["max_tokens"] < 0:
        kwargs["max_tokens"] = None  # Ollama's -1: until the context is full
    return SamplingParams(**kwargs)


def _error_text(response) -> str:
    try:
        return response.json().get("error", response.text)
    except ValueError:
        return response.text

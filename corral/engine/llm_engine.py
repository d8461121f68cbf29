"""The synchronous engine: add requests, then step() until they finish.

One step is three calls (schedule, run the model, update) plus turning tokens into text. Both
the offline `LLM` and the streaming `AsyncEngine` drive this class; it is not thread-safe, so
the async engine owns it from a single thread.
"""
from __future__ import annotations

import dataclasses
import itertools
import random
from typing import Callable

import torch

from corral.core.outputs import RequestOutput
from corral.core.request import Request
from corral.core.sampling_params import SamplingParams
from corral.core.scheduler import Scheduler, SchedulerConfig
from corral.engine import kv_cache
from corral.engine.device import kv_cache_budget_on_device, resolve_device
from corral.engine.engine_args import EngineArgs
from corral.engine.heap import keep_freed_memory
from corral.engine.loading import LoadedModel, load_model, packed_weights
from corral.engine.model_runner import ModelRunner
from corral.engine.output_processor import OutputProcessor
from corral.engine.prompt_tokens import encode_prompt
from corral.engine.step_isolation import RequestFailedError, execute_isolating
from corral.errors import ValidationError
from corral.layers.attention import resolve_backend_name
from corral.structured.manager import StructuredOutputManager


def kv_cache_dtype(name: str, model: torch.nn.Module, compute_dtype: torch.dtype = torch.float32) -> torch.dtype:
    """The KV cache's dtype for EngineArgs.kv_cache_dtype: "auto" is float16 when any weight is
    kept quantized for the int8-activation CPU kernels, the compute dtype otherwise (a model kept
    in float32 activations keeps its keys and values in float32 too)."""
    if name == "auto":
        packed = packed_weights(model)
        return torch.float16 if any(not p.float_activations for p in packed) else compute_dtype
    return getattr(torch, name)


class LLMEngine:
    def __init__(self, args: EngineArgs, loaded: LoadedModel | None = None,
                 on_load_progress: Callable[[int, int], None] | None = None):
        self.args = args
        if args.kv_cache_dtype not in EngineArgs.KV_CACHE_DTYPES:  # before the model loads
            raise ValidationError(
                "kv_cache_dtype", f"must be one of {', '.join(EngineArgs.KV_CACHE_DTYPES)}, got {args.kv_cache_dtype!r}"
            )
        if not 0 < args.gpu_memory_utilization <= 1:
            raise ValidationError("gpu_memory_utilization", f"must be in (0, 1], got {args.gpu_memory_utilization}")
        device = resolve_device(args.device)
        self.attention_backend = resolve_backend_name(args.attention_backend, device)  # before the model loads
        if args.num_threads:
            torch.set_num_threads(args.num_threads)
        keep_freed_memory()
        self.loaded = loaded or load_model(args, on_load_progress)
        self.tokenizer = self.loaded.tokenizer
        self.model_config = self.loaded.config
        self.max_model_len = self.loaded.max_model_len
        self.device, self.dtype = self.loaded.device, self.loaded.dtype
        dtype = kv_cache_dtype(args.kv_cache_dtype, self.loaded.model, self.dtype)
        self.kv_cache_dtype = dtype
        budget = args.kv_cache_memory
        if budget is None and self.device.type == "cuda":
            budget = kv_cache_budget_on_device(self.device, args.gpu_memory_utilization)
        max_step_tokens = max(args.max_num_batched_tokens, args.max_num_seqs)  # the scheduler's budget below
        num_blocks = kv_cache.plan_num_blocks(
            self.model_config, args.block_size, dtype, budget, self.max_model_len, args.max_num_seqs, max_step_tokens
        )
        self.kv_cache_bytes = num_blocks * kv_cache.bytes_per_block(self.model_config, args.block_size, dtype)
        caches = kv_cache.allocate(self.model_config, num_blocks, args.block_size, dtype, self.device)
        self.runner = ModelRunner(self.loaded.model, caches, args.block_size, self.device, self.attention_backend)
        if self.device.type == "cuda" and not args.enforce_eager and self.attention_backend == "triton":
            from corral.engine.cuda_graphs import DecodeGraphs

            self.runner.graphs = DecodeGraphs(self.loaded.model, caches, self.runner.backend, args.block_size,
                                              args.max_num_seqs, self.max_model_len, self.model_config.sliding_window,
                                              self.device).capture()
        self.scheduler = Scheduler(
            SchedulerConfig(
                max_num_seqs=args.max_num_seqs,
                max_num_batched_tokens=max_step_tokens,
                max_model_len=self.max_model_len,
                block_size=args.block_size,
                num_blocks=num_blocks,
                enable_prefix_caching=args.enable_prefix_caching,
                # set only when every layer has this window (Gemma's per-layer windows leave it None)
                sliding_window=self.model_config.sliding_window,
            )
        )
        self.outputs = OutputProcessor(self.tokenizer, self.loaded.make_detokenizer)
        self.eos_token_ids = frozenset(self.tokenizer.eos_token_ids)
        self.structured = StructuredOutputManager(self.tokenizer, self.model_config.vocab_size)
        self._ids = itertools.count()
        self._children: dict[str, list[str]] = {}
        self._rng = random.Random(args.seed)
        self._failures: dict[str, RequestFailedError] = {}  # user request id -> why it was stopped
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0

    def placement_info(self) -> dict:
        """Where and how the model runs: device, compute dtype, attention backend, KV cache dtype,
        weights ("quantized" in their blocks, with int8 or float32 activations, or "dense") and, on
        CUDA, whether decode steps replay CUDA graphs."""
        def name(dtype: torch.dtype) -> str:
            return str(dtype).removeprefix("torch.")

        packed = packed_weights(self.loaded.model)
        weights = "dense" if not packed else (
            "quantized, float32 activations" if all(p.float_activations for p in packed) else "quantized, int8 activations")
        info = {"device": str(self.device), "dtype": name(self.dtype), "attention_backend": self.attention_backend,
                "kv_cache_dtype": name(self.kv_cache_dtype), "weights": weights}
        if self.device.type == "cuda":
            info["cuda_graphs"] = bool(self.runner.graphs)
        return info

    def placement(self) -> str:
        """placement_info() in one line, e.g. "device cpu  dtype float32  weights dense  attention cpu  KV cache float32"."""
        info = self.placement_info()
        graphs = f"  cuda graphs {'on' if info['cuda_graphs'] else 'off'}" if "cuda_graphs" in info else ""
        return (f"device {info['device']}  dtype {info['dtype']}  weights {info['weights']}  "
                f"attention {info['attention_backend']}  KV cache {info['kv_cache_dtype']}{graphs}")

    @property
    def memory_bytes(self) -> int:
        return self.loaded.weights_bytes + self.kv_cache_bytes

    def tokenize(self, prompt: str) -> list[int]:
        """Token ids of a text prompt (BOS as the model wants); ContextLengthError when it cannot
        fit the context, found from a prefix for a text far too long."""
        return encode_prompt(self.tokenizer, prompt, self.max_model_len - 1)

    def add_request(self, prompt: str | list[int], params: SamplingParams, request_id: str | None = None,
                    prompt_text: str | None = None) -> str:
        """Queue a request (n samples); returns its id. Raises ValidationError/ContextLengthError at once.

        `prompt_text` names the text behind token-id prompts (e.g. a rendered chat template)."""
        request_id = request_id or f"req-{next(self._ids)}"
        if request_id in self._children:
            raise ValidationError("request_id", f"request {request_id!r} is already running")
        text = prompt if isinstance(prompt, str) else prompt_text
        ids = self.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        if not ids:
            raise ValidationError("prompt", "the prompt is empty")
        vocab = self.model_config.vocab_size
        if any(not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < vocab for t in ids):
            raise ValidationError("prompt", f"token ids must be in [0, {vocab})")
        if any(not 0 <= t < vocab for t in params.stop_token_ids):
            raise ValidationError("stop_token_ids", f"token ids must be in [0, {vocab}) for this model")
        seed = params.seed if params.seed is not None else self._rng.getrandbits(62)
        child_ids = [request_id if params.n == 1 else f"{request_id}#{i}" for i in range(params.n)]
        spec = params.structured_outputs
        matcher = self.structured.compile(spec) if spec is not None else None  # ValidationError first
        children = []
        for i, cid in enumerate(child_ids):
            # Each sample draws from its own seed; unseeded requests get a random one here.
            children.append(Request(cid, ids, dataclasses.replace(params, seed=seed + i), self.eos_token_ids))
        added = []
        try:
            for i, req in enumerate(children):
                self.scheduler.add_request(req)
                added.append(req.request_id)
                if spec is not None:
                    self.structured.add(req.request_id, spec, matcher if i == 0 else matcher.deep_copy())
        except Exception:
            for cid in added:
                self.scheduler.abort_request(cid)
                self.structured.remove(cid)
            raise
        self.outputs.add(request_id, text, ids, params, child_ids)
        self._children[request_id] = child_ids
        self.prompt_tokens_total += len(ids) * params.n
        return request_id

    def prompt_logits(self, token_ids: list[int]) -> torch.Tensor:
        """Logits (T, vocab) at every position of a prompt, computed in one pass through the
        same paged KV cache and kernels as generation (for scoring and reference checks)."""
        from corral.core.scheduler_output import ScheduledRequest

        probe = Request(f"logits-{next(self._ids)}", list(token_ids), SamplingParams(max_tokens=1))
        cache = self.scheduler.kv_cache
        if len(token_ids) > self.max_model_len or not cache.allocate_slots(probe, len(token_ids)):
            raise ValidationError("prompt", f"{len(token_ids)} tokens do not fit the context or the free KV cache")
        try:
            step = ScheduledRequest(probe.request_id, list(token_ids), 0, cache.get_block_ids(probe.request_id),
                                    False, probe.sampling_params)
            return self.runner.all_logits(step)
        finally:
            cache.free(probe)

    def abort(self, request_id: str) -> None:
        for cid in self._children.pop(request_id, []):
            self.scheduler.abort_request(cid)
            self.structured.remove(cid)
        self.outputs.remove(request_id)

    def unfinished_request_ids(self) -> list[str]:
        return list(self._children)

    def has_unfinished(self) -> bool:
        """Whether any request still has tokens to generate (finished results may await pop)."""
        return self.scheduler.has_unfinished_requests()

    def step(self) -> list[str]:
        """Run one step; returns the ids of user requests that have something new.

        A request that makes the step raise is stopped and the step goes on without it (see
        `step_isolation`); its error waits in `pop_failures()`. Raises StepFailedError only when
        the step fails for every request of the batch."""
        sched = self.scheduler.schedule()
        masks = None
        touched = []
        if self.structured.active:
            masks = self.structured.masks([r.request_id for r in sched.scheduled if r.sample])
            for rid, why in (masks.dead if masks else {}).items():
                touched.append(self._end_constrained(rid, why))
        sampled, failed = execute_isolating(lambda part: self.runner.execute(part, masks), sched)
        for child_id, error in failed.items():
            self._fail(child_id, error)
        changed = self.scheduler.update_from_output(sched, {k: [v.token_id] for k, v in sampled.items()})
        for req in changed:
            self.generation_tokens_total += 1
            if req.request_id not in self.outputs.child_to_parent:
                continue  # its user request failed earlier in this loop (a sibling sample)
            parent_id, _ = self.outputs.child_to_parent[req.request_id]
            if self.structured.has(req.request_id):
                verdict = None if req.is_finished else self.structured.accept(req.request_id, req.output_token_ids[-1])
                if verdict == "done":  # the grammar is complete: nothing more may follow
                    self.scheduler.finish_request(req.request_id, "stop", "grammar")
                elif verdict is not None:
                    self.scheduler.finish_request(req.request_id, "error", verdict)
            try:
                stop = self.outputs.process(req, sampled.get(req.request_id))
            except Exception as error:  # e.g. a token the detokenizer cannot handle
                self._fail(req.request_id, error)
                continue
            if stop is not None and not req.is_finished:
                self.scheduler.finish_request(req.request_id, "stop", stop)
            if req.is_finished:
                self.structured.remove(req.request_id)
            touched.append(parent_id)
        return [rid for rid in dict.fromkeys(touched) if rid in self._children]

    def pop_failures(self) -> dict[str, RequestFailedError]:
        """User requests stopped by an error since the last call (already aborted), by id."""
        failures, self._failures = self._failures, {}
        return failures

    def _fail(self, child_id: str, error: BaseException) -> None:
        parent_id = self.outputs.child_to_parent.get(child_id, (child_id, 0))[0]
        if parent_id in self._children:
            self._failures[parent_id] = RequestFailedError(parent_id, error)
            self.abort(parent_id)

    def _end_constrained(self, child_id: str, why: str) -> str:
        """Finish a request whose grammar admits no token, with finish_reason "error"; returns its parent id."""
        req = self.scheduler.finish_request(child_id, "error", why)
        self.structured.remove(child_id)
        if req is not None:
            self.outputs.process(req, None)
        return self.outputs.child_to_parent[child_id][0]

    def pop_delta(self, request_id: str) -> RequestOutput | None:
        out = self.outputs.delta(request_id)
        if out is not None and out.finished:
            self._forget(request_id)
        return out

    def pop_final(self, request_id: str) -> RequestOutput:
        out = self.outputs.final(request_id)
        self._forget(request_id)
        return out

    def is_finished(self, request_id: str) -> bool:
        parent = self.outputs.parents.get(request_id)
        return parent is None or parent.finished

    def _forget(self, request_id: str) -> None:
        self._children.pop(request_id, None)
        self.outputs.remove(request_id)

"""The server's engine for embedding and reranking models: requests from any number of clients
are gathered and run together.

One worker thread owns the model. Each request is tokenized and checked on the event loop (so a
bad request fails before it waits), then queued; the worker takes every queued embedding request
at once and runs all their inputs in one `Embedder.pool_ids` call (batches sorted by length), so
concurrent requests share forward passes; queued rerank requests likewise share one
`Embedder.score_pairs` call.
It offers the attributes the server reads from an AsyncEngine (tokenizer, max_model_len,
memory_bytes, stats(), shutdown()); `generate` raises ModelKindError, a 400 naming the model's kind.
"""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any


from corral.engine.async_engine import EngineStats
from corral.engine.embedder import Embedder, Input
from corral.engine.embedding_loader import load_embedding_model
from corral.errors import ModelKindError

KIND_NAMES = {"embed": "an embedding model", "rerank": "a reranking (cross-encoder) model"}


@dataclass
class _Job:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    seqs: list[list[int]] = field(default_factory=list)
    pairs: list[tuple[list[int], list[int]]] | None = None


class AsyncEmbedder:
    def __init__(self, embedder: Embedder, model_name: str):
        self.embedder = embedder
        self.model_name = model_name
        self.kind = embedder.kind
        self.tokenizer = embedder.tokenizer
        self.max_model_len = embedder.max_len
        self.model_config = embedder.model.model_config
        self.memory_bytes = embedder.model.weights_bytes
        self.load_seconds = embedder.model.load_seconds
        self.dimensions = embedder.model.dim
        self.prompt_tokens_total = 0
        self._cond = threading.Condition()
        self._queue: list[_Job] = []
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"corral-embedder-{model_name}", daemon=True)
        self._thread.start()

    @classmethod
    def from_model(cls, path, name: str = "", num_threads: int | None = None, **_engine_kwargs) -> "AsyncEmbedder":
        """`name`: the store name `path` was resolved from, if any (see load_embedding_model);
        `num_threads`: torch's CPU threads, as the generation engine takes them (CORRAL_NUM_THREADS)."""
        if num_threads:
            import torch

            torch.set_num_threads(num_threads)
        return cls(Embedder(load_embedding_model(path, name)), str(path))

    def describe(self) -> str:
        return f"'{self.model_name}' is {KIND_NAMES[self.kind]}"

    # -- event-loop side ---------------------------------------------------------------------

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.embedder.encode(text, add_special_tokens)

    async def embed(self, inputs: list[Input], truncate: bool = False,
                    dimensions: int | None = None) -> tuple[list[list[float]], int]:
        """(vectors, prompt tokens) for `inputs`; raises the Embedder's user errors before queueing."""
        if self.kind != "embed":
            raise ModelKindError(f"{self.describe()}: it scores query-document pairs with /v1/rerank; "
                                 "use an embedding model for embeddings")
        self.embedder.check_dimensions(dimensions)
        seqs = self.embedder.prepare(inputs, truncate)
        pooled = await self._submit(_Job(asyncio.get_running_loop(), asyncio.get_running_loop().create_future(), seqs))
        vectors = self.embedder.finish(pooled, dimensions)
        return vectors.tolist(), sum(len(s) for s in seqs)

    async def rerank(self, query: str, documents: list[str], truncate: bool = True) -> tuple[list[float], int]:
        if self.kind != "rerank":
            raise ModelKindError(f"{self.describe()}: reranking needs a cross-encoder (e.g. a BGE reranker); "
                                 "use /v1/embeddings with this model")
        pairs = self.embedder.prepare_pairs(query, documents, truncate)
        scores = await self._submit(_Job(asyncio.get_running_loop(), asyncio.get_running_loop().create_future(),
                                         pairs=pairs))
        return scores, sum(len(p[0]) for p in pairs)

    def check_can_generate(self) -> None:
        """Always raises: this model does not generate text (a 400 that names its kind)."""
        use = "/v1/embeddings or /api/embed" if self.kind == "embed" else "/v1/rerank"
        raise ModelKindError(f"{self.describe()}, not a text-generation model: it cannot chat or complete; "
                             f"use {use}")

    async def generate(self, *args: Any, **kwargs: Any):
        self.check_can_generate()
        yield  # never reached; makes this an async generator like AsyncEngine.generate

    async def abort(self, request_id: str) -> None:
        return None

    def stats(self) -> EngineStats:
        with self._cond:
            waiting = len(self._queue)
        return EngineStats(num_running=0, num_waiting=waiting, kv_cache_usage=0.0,
                           prompt_tokens_total=self.prompt_tokens_total, generation_tokens_total=0, num_preemptions=0)

    def shutdown(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=30)

    async def _submit(self, job: _Job):
        with self._cond:
            if self._stopped:
                raise RuntimeError("the model was unloaded")
            self._queue.append(job)
            self._cond.notify()
        return await job.future

    # -- worker thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    jobs, self._queue = self._queue, []
                    for job in jobs:
                        self._resolve(job, RuntimeError("the model was unloaded"))
                    return
                jobs, self._queue = self._queue, []
            embeds = [j for j in jobs if j.pairs is None and not j.future.cancelled()]
            if embeds:
                self._run_embeds(embeds)
            reranks = [j for j in jobs if j.pairs is not None and not j.future.cancelled()]
            if reranks:
                self._run_reranks(reranks)

    def _run_embeds(self, jobs: list[_Job]) -> None:
        seqs = [s for j in jobs for s in j.seqs]
        try:
            pooled = self.embedder.pool_ids(seqs)
        except Exception as e:  # a bug or out of memory: fail these requests, keep serving
            for job in jobs:
                self._resolve(job, e)
            return
        self.prompt_tokens_total += sum(len(s) for s in seqs)
        start = 0
        for job in jobs:
            self._resolve(job, pooled[start:start + len(job.seqs)].clone())
            start += len(job.seqs)

    def _run_reranks(self, jobs: list[_Job]) -> None:
        pairs = [p for j in jobs for p in j.pairs]
        try:
            scores = self.embedder.score_pairs(pairs)
        except Exception as e:  # a bug or out of memory: fail these requests, keep serving
            for job in jobs:
                self._resolve(job, e)
            return
        self.prompt_tokens_total += sum(len(p[0]) for p in pairs)
        start = 0
        for job in jobs:
            self._resolve(job, scores[start:start + len(job.pairs)])
            start += len(job.pairs)

    @staticmethod
    def _resolve(job: _Job, value) -> None:
        def set_result():
            if job.future.done():
                return
            if isinstance(value, BaseException):
                job.future.set_exception(value)
            else:
                job.future.set_result(value)

        job.loop.call_soon_threadsafe(set_result)

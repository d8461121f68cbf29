"""Decode steps replayed from CUDA graphs, as vLLM does: one graph per batch size in
`capture_sizes`, captured at start; a decode batch is padded to the next captured size and its
inputs copied into the graph's static tensors, so a step launches one graph instead of hundreds
of kernels. CUDA only, with an attention backend whose decode reads only tensors (triton);
`--enforce-eager` turns it off.

Padding rows repeat the batch's last row (same token, position, slot and block table): they
write the same K/V to the same slot as that row, so they change nothing, and their outputs are
dropped.
"""
from __future__ import annotations

import torch

from corral.layers.attention import AttentionBackend, AttentionMetadata
from corral.models.forward_batch import ForwardBatch


def capture_sizes(max_num_seqs: int) -> list[int]:
    sizes = [n for n in (1, 2, 4, 8) if n <= max_num_seqs] + list(range(16, max_num_seqs + 1, 16))
    return sorted(set(sizes + [max_num_seqs]))


class DecodeGraphs:
    def __init__(self, model, kv_caches: list[torch.Tensor], backend: AttentionBackend, block_size: int,
                 max_num_seqs: int, max_model_len: int, sliding_window: int | None, device: torch.device):
        self.model, self.kv_caches, self.backend = model, kv_caches, backend
        self.block_size, self.sliding_window = block_size, sliding_window
        self.sizes = capture_sizes(max_num_seqs)
        self.max_blocks = -(-max_model_len // block_size)
        n = self.sizes[-1]
        self.input_ids = torch.zeros(n, dtype=torch.long, device=device)
        self.positions = torch.zeros(n, dtype=torch.long, device=device)
        self.slots = torch.zeros(n, dtype=torch.long, device=device)
        self.seq_lens = torch.ones(n, dtype=torch.long, device=device)
        self.tables = torch.zeros(n, self.max_blocks, dtype=torch.long, device=device)
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.outputs: dict[int, torch.Tensor] = {}

    def _batch(self, n: int) -> ForwardBatch:
        attn = AttentionMetadata(
            block_size=self.block_size, slot_mapping=self.slots[:n], block_tables=self.tables[:n],
            query_start_loc=list(range(n + 1)), context_lens=[0] * n, seq_lens=[1] * n,
            seq_lens_tensor=self.seq_lens[:n], all_decode=True, sliding_window=self.sliding_window,
        )
        return ForwardBatch(input_ids=self.input_ids[:n], positions=self.positions[:n], attn=attn,
                            kv_caches=self.kv_caches, backend=self.backend)

    @torch.inference_mode()
    def capture(self) -> "DecodeGraphs":
        """Capture every size, largest first (the later ones reuse its memory pool). Runs before
        any request, so the dummy steps' writes to slot 0 overwrite nothing."""
        pool = None
        for n in reversed(self.sizes):
            self.model(self._batch(n))  # warm-up: Triton compiles and the allocator grows outside capture
            torch.cuda.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                self.outputs[n] = self.model(self._batch(n))
            pool = graph.pool()
            self.graphs[n] = graph
        return self

    def fits(self, batch: ForwardBatch) -> bool:
        attn = batch.attn
        return (attn.all_decode and batch.output_rows is None and attn.num_seqs <= self.sizes[-1]
                and attn.block_tables.shape[1] <= self.max_blocks)

    def run(self, batch: ForwardBatch) -> torch.Tensor:
        """Final hidden states (B, hidden) of a decode batch that `fits`."""
        n = batch.attn.num_seqs
        size = next(s for s in self.sizes if s >= n)
        pad = size - n
        width = batch.attn.block_tables.shape[1]
        for static, value in ((self.input_ids, batch.input_ids), (self.positions, batch.positions),
                              (self.slots, batch.attn.slot_mapping), (self.seq_lens, batch.attn.seq_lens_tensor)):
            static[:n].copy_(value)
            static[n:size].copy_(value[-1:].expand(pad))
        self.tables[:size].zero_()
        self.tables[:n, :width].copy_(batch.attn.block_tables)
        self.tables[n:size, :width].copy_(batch.attn.block_tables[-1:].expand(pad, width))
        self.graphs[size].replay()
        return self.outputs[size][:n]

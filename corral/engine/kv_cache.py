"""Sizing and allocating the paged KV cache from a memory budget."""
from __future__ import annotations

import torch

from corral.errors import OutOfMemoryError
from corral.loader.config import ModelConfig


DEFAULT_BUDGET = 1 << 30  # bytes


def bytes_per_block(cfg: ModelConfig, block_size: int, dtype: torch.dtype) -> int:
    """K and V of `block_size` tokens across every layer."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    return 2 * cfg.num_hidden_layers * block_size * cfg.num_key_value_heads * cfg.head_dim * itemsize


def available_memory_bytes() -> int:
    """Memory the OS could still give this process (MemAvailable), or 8 GiB where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def plan_num_blocks(cfg: ModelConfig, block_size: int, dtype: torch.dtype, budget_bytes: int | None,
                    max_model_len: int, max_num_seqs: int, max_step_tokens: int | None = None) -> int:
    """Blocks that fit the budget. The default budget is DEFAULT_BUDGET (or what one
    full-length sequence needs, if more), never over a quarter of available memory, and never
    more than max_num_seqs full-length sequences could use: the cache is allocated (and touched)
    up front. Raises OutOfMemoryError when not even one full-length sequence fits. A sequence of
    a model whose every layer has a window (`cfg.sliding_window`) needs only the blocks it holds at
    once, given steps of at most `max_step_tokens` (the scheduler releases those behind the window)."""
    from corral.core.block_manager import blocks_held_under_window

    per_block = bytes_per_block(cfg, block_size, dtype)
    blocks_per_seq = -(-max_model_len // block_size)
    if cfg.sliding_window is not None and max_step_tokens is not None:
        blocks_per_seq = min(blocks_per_seq, blocks_held_under_window(cfg.sliding_window, max_step_tokens, block_size))
    if budget_bytes is None:
        budget_bytes = min(max(DEFAULT_BUDGET, blocks_per_seq * per_block), available_memory_bytes() // 4)
        num_blocks = min(budget_bytes // per_block, blocks_per_seq * max_num_seqs)
    else:
        num_blocks = budget_bytes // per_block
    if num_blocks < blocks_per_seq:
        need = blocks_per_seq * per_block
        raise OutOfMemoryError(
            f"the KV cache budget ({budget_bytes / 2**20:.0f} MiB) cannot hold one sequence of "
            f"{min(max_model_len, blocks_per_seq * block_size)} tokens ({need / 2**20:.0f} MiB); "
            "raise --kv-cache-memory or lower --max-model-len"
        )
    return int(num_blocks)


def allocate(cfg: ModelConfig, num_blocks: int, block_size: int, dtype: torch.dtype, device) -> list[torch.Tensor]:
    """One (2, num_blocks, block_size, Hk, D) tensor per layer, zeroed (masked slots must not hold NaN)."""
    shape = (2, num_blocks, block_size, cfg.num_key_value_heads, cfg.head_dim)
    return [torch.zeros(shape, dtype=dtype, device=device) for _ in range(cfg.num_hidden_layers)]

"""A Llama-family decode step's layers in one C call (corral/kernels/csrc/decode_layers.c).

The Python layers call about ten kernels a layer; at one token each call's Python costs a few
microseconds, 2-3 ms a step on a 30-layer 135M model, a quarter of its step. `FusedDecode` hands
the whole layer loop to C: the same kernels with the same arguments in the same order, so the
hidden states are bitwise those of the Python layers (tested), and the GIL is released once for
the step instead of once per kernel. It takes the steps it can (every sequence decoding one token,
every projection kept quantized, SiLU or GELU-tanh, full rotary, the C attention kernel's cache)
and leaves any other step to the Python layers. Mixture-of-experts layers (Mixtral, Qwen3-MoE; not
Qwen2-MoE's shared expert) join at one token a step, through the same C block their Python layer
calls. Gemma 2 and 3 join with their norms after attention and MLP, per-layer windows and rotary
tables and attention soft-capping (`_parts` says what each layer is to the loop).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from corral import kernels
from corral.engine.thread_choice import ThreadChoice
from corral.kernels import attention as attention_kernel
from corral.kernels.ops import _addr
from corral.layers.attention.torch_paged import TorchPagedAttention
from corral.layers.linear import Linear
from corral.models.forward_batch import ForwardBatch

if TYPE_CHECKING:
    from corral.models.llama import LlamaModel


def _ext():
    from corral.kernels import _qmatmul

    return _qmatmul


def _proj(layer: Linear) -> tuple[int, int, int, int, bool]:
    w = layer.packed
    return (w.type_id, w.addr, w.row_stride, w.shape[0], w.float_activations)


def _float_vector(t: torch.Tensor | None, n: int) -> bool:
    return t is None or (t.dtype == torch.float32 and t.is_contiguous() and not t.is_cuda and t.numel() == n)


class FusedDecode:
    """The C layer loop of one LlamaModel and its output projection `head` (when kept quantized),
    or `supported(model)` False when its layers are not what the loop runs. A plan (weight and
    cache addresses) is built at the first step and again whenever the KV caches move."""

    def __init__(self, model: "LlamaModel", head: Linear | None = None):
        self.model = model
        self.head = head if head is not None and head.packed is not None and head.bias is None else None
        self._logits: tuple[torch.Tensor, torch.Tensor] | None = None  # (hidden, logits) of the last step
        self._plan = None
        self._caches: tuple[int, ...] = ()
        self._scratch: dict[int, tuple[torch.Tensor, ...]] = {}
        self._level = _ext().best_level()
        self._sparse = any(_sparse(layer) is not None for layer in model.layers)
        self._gemma = hasattr(model, "embed_scale")  # GemmaModel: scaled embeddings, two rotary tables
        self.threads = ThreadChoice()  # fewer threads while another process holds a core

    @staticmethod
    def supported(model: "LlamaModel") -> bool:
        if not (kernels.is_available() and attention_kernel.is_available()) or not len(model.layers):
            return False
        parts = [_parts(layer) for layer in model.layers]
        if any(p is None for p in parts):
            return False
        first, attn0 = parts[0], parts[0].attn
        hidden, d = model.norm.weight.numel(), attn0.head_dim
        if d % 2 or len({(p.scale, p.softcap, p.act) for p in parts}) != 1 or first.act not in _ACTS:
            return False
        for layer, p in zip(model.layers, parts):
            attn, mlp = p.attn, p.mlp
            if p.sparse:  # one token's block in one call (moe.c); no shared expert
                if mlp.moe.shared_expert_size or not mlp._quantized_experts() or mlp.c_plan() is None:
                    return False
            elif mlp.gate_proj.out_features != first_inter(model):
                return False
            elif any(w.packed is None or w.bias is not None for w in (mlp.gate_proj, mlp.up_proj, mlp.down_proj)):
                return False
            if (attn.num_heads, attn.num_kv_heads, attn.head_dim) != (attn0.num_heads, attn0.num_kv_heads, d):
                return False
            if any(w.packed is None for w in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj)):
                return False
            if attn.o_proj.bias is not None or attn.eps != attn0.eps:
                return False
            vectors = [(n.weight, hidden) for n in p.norms if n is not None]
            vectors += [(attn.q_proj.bias, attn.num_heads * d), (attn.k_proj.bias, attn.num_kv_heads * d),
                        (attn.v_proj.bias, attn.num_kv_heads * d)]
            if attn.qk_norm:
                vectors += [(attn.q_norm.weight, d), (attn.k_norm.weight, d)]
            if not all(_float_vector(t, n) for t, n in vectors):
                return False
            if any(n is not None and n.eps != attn0.eps for n in p.norms):
                return False
        return _float_vector(model.norm.weight, hidden) and model.norm.eps == attn0.eps

    def run(self, batch: ForwardBatch) -> torch.Tensor | None:
        """Final hidden states (T, hidden) of a decode step, the model's forward; None when the
        step is not one the loop runs. With a head, the step's logits wait for `logits_of`."""
        self._logits = None
        meta = batch.attn
        if not meta.all_decode or batch.output_rows is not None or meta.logit_softcap:
            return None
        if self._sparse and batch.input_ids.shape[0] != 1:  # a batch's tokens go to experts grouped, in Python
            return None
        if not isinstance(batch.backend, TorchPagedAttention) or not batch.backend.use_kernel:
            return None
        caches = batch.kv_caches
        key = tuple(c.data_ptr() for c in caches)
        if key != self._caches:
            self._caches = key
            self._plan = self._build(caches)
        if self._plan is None:
            return None
        model = self.model
        x = model.embed_tokens(batch.input_ids)  # (T, hidden), the residual stream below
        if self._gemma:
            x = x * model.embed_scale  # as GemmaModel.forward scales it
            cos, sin = model.rotary.tables(batch.positions)
            cos_l, sin_l = model.rotary_local.tables(batch.positions) if model.has_local else (cos, sin)
        else:
            cos, sin = batch.rotary = model.rotary.tables(batch.positions)
            cos_l, sin_l = cos, sin
        t, hidden = x.shape
        first = model.layers[0].self_attn
        tables, lens, slots = meta.block_tables, meta.seq_lens_tensor, meta.slot_mapping
        if not (x.dtype == torch.float32 and x.is_contiguous() and cos.dtype == torch.float32 and cos.is_contiguous()
                and sin.dtype == torch.float32 and sin.is_contiguous() and cos.shape == (t, first.head_dim)
                and tables.dtype == torch.int64 and tables.is_contiguous() and tables.dim() == 2
                and lens.dtype == torch.int64 and lens.is_contiguous() and slots.dtype == torch.int64
                and slots.is_contiguous() and lens.shape == (t,) and slots.shape == (t,) and tables.shape[0] == t
                and not x.is_cuda and cos_l.dtype == torch.float32 and cos_l.is_contiguous() and cos_l.shape == cos.shape
                and sin_l.dtype == torch.float32 and sin_l.is_contiguous() and sin_l.shape == sin.shape):
            return None
        out, q, k, v, att, gate, up = self._buffers(t, hidden)
        logits = torch.empty(t, self.head.out_features) if self.head is not None else None
        most = torch.get_num_threads()
        threads = self.threads.pick(t, most)
        start = time.perf_counter()
        _ext().decode_layers(
            self._level, self._plan, t, tables.shape[1], meta.sliding_window or 0, x.data_ptr(), out.data_ptr(),
            cos.data_ptr(), sin.data_ptr(), tables.data_ptr(), lens.data_ptr(), slots.data_ptr(), q.data_ptr(),
            k.data_ptr(), v.data_ptr(), att.data_ptr(), gate.data_ptr(), up.data_ptr(), _addr(logits), threads,
            cos_l.data_ptr(), sin_l.data_ptr())
        self.threads.record(t, threads, most, time.perf_counter() - start)
        if logits is not None:
            self._logits = (out, logits)
        return out

    def logits_of(self, hidden: torch.Tensor) -> torch.Tensor | None:
        """The logits run() computed with the hidden states it returned, once; None for others."""
        last, self._logits = self._logits, None
        return last[1] if last is not None and last[0] is hidden else None

    def _buffers(self, t: int, hidden: int) -> tuple[torch.Tensor, ...]:
        """The output (fresh each step: the caller keeps it) and the scratch of t tokens (reused)."""
        scratch = self._scratch.get(t)
        if scratch is None:
            attn = self.model.layers[0].self_attn
            q_size, kv_size = attn.num_heads * attn.head_dim, attn.num_kv_heads * attn.head_dim
            inter = first_inter(self.model)
            scratch = tuple(torch.empty(t, n) for n in (q_size, kv_size, kv_size, q_size, inter, inter))
            self._scratch = {t: scratch} if len(self._scratch) > 8 else {**self._scratch, t: scratch}
        return (torch.empty(t, hidden), *scratch)

    def _build(self, caches: list[torch.Tensor]):
        """The C plan of the layers over these caches, or None when the caches are not the kernel's."""
        model = self.model
        first = model.layers[0].self_attn
        if len(caches) != len(model.layers):
            return None
        shape, dtype = caches[0].shape, caches[0].dtype
        for c in caches:
            if (c.is_cuda or c.dtype not in (torch.float32, torch.float16) or not c.is_contiguous() or c.dim() != 5
                    or c.shape != shape or c.dtype != dtype):
                return None
        _, num_blocks, block_size, hk, d = shape
        if (hk, d) != (first.num_kv_heads, first.head_dim) or first.num_heads // hk > attention_kernel.MAX_GROUP:
            return None
        rows = []
        for layer, cache in zip(model.layers, caches):
            p = _parts(layer)
            attn, mlp, sparse = p.attn, p.mlp, _sparse(layer)
            # a sparse layer's dense projections are unused: the attention's stand in for them
            dense = (attn.q_proj, attn.q_proj, attn.q_proj) if sparse else (mlp.gate_proj, mlp.up_proj, mlp.down_proj)
            norm_in, post_attn, pre_mlp, post_mlp = p.norms
            rows.append((
                _proj(attn.q_proj), _proj(attn.k_proj), _proj(attn.v_proj), _proj(attn.o_proj),
                *(_proj(w) for w in dense),
                norm_in.weight.data_ptr(), pre_mlp.weight.data_ptr(),
                _addr(attn.q_proj.bias), _addr(attn.k_proj.bias), _addr(attn.v_proj.bias),
                _addr(attn.q_norm.weight) if attn.qk_norm else 0, _addr(attn.k_norm.weight) if attn.qk_norm else 0,
                cache.data_ptr(), sparse, _addr(post_attn.weight if post_attn is not None else None),
                _addr(post_mlp.weight if post_mlp is not None else None), p.local, p.window,
            ))
        p = _parts(model.layers[0])
        return _ext().decode_plan(
            rows, model.norm.weight.numel(), first.num_heads, hk, d, first_inter(model), first.eps,
            float(p.scale), dtype == torch.float16, block_size, num_blocks, model.norm.weight.data_ptr(),
            None if self.head is None else _proj(self.head), p.act == "gelu_pytorch_tanh", float(p.softcap))


def first_inter(model: "LlamaModel") -> int:
    """The dense MLPs' width (1 when every layer is sparse: scratch the loop never touches)."""
    return next((layer.mlp.gate_proj.out_features for layer in model.layers if _sparse(layer) is None), 1)


def _sparse(layer):
    """A mixture-of-experts layer's C block (moe.c capsule, alive as long as the layer), else None."""
    from corral.models.moe_model import SparseMoeBlock

    return layer.mlp.c_plan() if type(layer.mlp) is SparseMoeBlock else None


_ACTS = ("silu", "gelu_pytorch_tanh")


class _Parts(NamedTuple):
    """What the C loop needs to know of one decoder layer, whatever its family."""

    attn: Any
    mlp: Any
    norms: tuple  # (before attention, after it or None, before the MLP, after it or None)
    scale: float
    softcap: float  # 0: none
    window: int  # -1: the step's; else this layer's (0: all positions)
    local: bool  # rotates by the local table (Gemma 3's sliding layers)
    act: str
    sparse: bool


def _parts(layer) -> _Parts | None:
    """The layer as the loop runs it, or None for a layer it does not run."""
    from corral.models.gemma_model import GemmaAttention, GemmaDecoderLayer
    from corral.models.llama import LlamaAttention, LlamaDecoderLayer, LlamaMLP
    from corral.models.moe_model import MoeDecoderLayer, SparseMoeBlock

    attn, mlp = layer.self_attn, layer.mlp
    sparse = type(mlp) is SparseMoeBlock
    if not sparse and type(mlp) is not LlamaMLP:
        return None
    act = "silu" if sparse else mlp.act
    if type(layer) in (LlamaDecoderLayer, MoeDecoderLayer) and type(attn) is LlamaAttention:
        if attn.rotary_dim is not None:
            return None
        return _Parts(attn, mlp, (layer.input_layernorm, None, layer.post_attention_layernorm, None), attn.scale, 0.0,
                      -1, False, act, sparse)
    if type(layer) is GemmaDecoderLayer and type(attn) is GemmaAttention and not sparse:
        how = layer.how
        norms = (layer.input_layernorm, layer.post_attention_layernorm, layer.pre_feedforward_layernorm,
                 layer.post_feedforward_layernorm)
        return _Parts(attn, mlp, norms, how.scale, how.logit_softcap or 0.0, how.sliding_window or 0,
                      how.rope == "local", act, False)
    return None


def decode_forward(lm, batch: ForwardBatch) -> torch.Tensor:
    """A causal LM's forward with its decode steps through `lm.fused_decode` (made at the first
    call, after the weights are loaded; False where the model is not what the loop runs)."""
    if lm.fused_decode is None:
        lm.fused_decode = FusedDecode(lm.model, lm.lm_head) if FusedDecode.supported(lm.model) else False
    if lm.fused_decode:
        hidden = lm.fused_decode.run(batch)
        if hidden is not None:
            return hidden
    return lm.model(batch)


def decode_logits(lm, hidden: torch.Tensor) -> torch.Tensor:
    """lm_head(hidden) as float32, or the logits the fused step already computed for `hidden`."""
    logits = lm.fused_decode.logits_of(hidden) if lm.fused_decode else None
    return lm.lm_head(hidden).float() if logits is None else logits

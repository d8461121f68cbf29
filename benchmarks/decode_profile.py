"""Where the time of a decode step goes: engine steps of --batch sequences, timed whole and then
broken down by wrapping the functions a step calls with timers.

    OMP_NUM_THREADS=2 python benchmarks/decode_profile.py /tmp/corral-bench/qwen2.5-0.5b-q4_0.gguf --threads 2
    python benchmarks/decode_profile.py /tmp/corral-bench/llama-3.2-1b-q4_0.gguf --threads 1 --steps 64
    python benchmarks/decode_profile.py MODEL --batch 16 --torch-profile   # plus torch.profiler's table
    python benchmarks/decode_profile.py MODEL --python-layers   # Llama family: layers from Python, call by call

From a checkout other than the installed one, prefix PYTHONPATH=. (a script's own folder, not the
working directory, is first on sys.path).

First the plain step time (no timers): best and median of --steps engine steps, each one decoded
token per sequence, after a prefill of --prompt-tokens random tokens and --warmup steps. Then the
same number of steps with timers, as milliseconds per step. Each row is the time spent in that
function itself, not counting the rows nested inside it (a Linear's time excludes the kernel it
calls; "model forward (rest)" is what the model spends outside every wrapped function). The rows
add up to the engine step; each wrapped call costs a few us more with its timer (about 1 ms a step
on Qwen2.5-0.5B), so the timed step is a little slower than the plain one. Both sets of steps run with greedy sampling and no end-of-sequence stop.
Before the fused ops (ops.py), residual adds counted in "model forward (rest)", not in "norms".
A Llama-family model's decode steps run their layers and output projection in one C call
(models/llama_decode.py): its row "decoder layers in one C call" holds all their kernels;
--python-layers shows them call by call instead.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import defaultdict
from typing import Callable

import torch


class Timers:
    """Exclusive (self) and inclusive time per label, for wrapped functions that may nest."""

    def __init__(self) -> None:
        self.self_s: dict[str, float] = defaultdict(float)
        self.total_s: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._children: list[float] = []  # per open call: time of the calls nested in it
        self._undo: list[tuple[object, str, object]] = []

    def wrap(self, label: str, owner: object, name: str) -> None:
        """Replace owner.name by a timed version (a no-op when owner has no such attribute)."""
        # Classes: only what the class itself defines (wrapping an inherited method would time it twice).
        namespace = {} if owner is None else vars(owner)
        if name not in namespace:
            return
        original = namespace[name]
        static = isinstance(original, staticmethod)
        fn: Callable = original.__func__ if static else original
        perf_counter, children = time.perf_counter, self._children

        def timed(*args, **kwargs):
            children.append(0.0)
            t0 = perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = perf_counter() - t0
                inner = children.pop()
                self.self_s[label] += dt - inner
                self.total_s[label] += dt
                self.calls[label] += 1
                if children:
                    children[-1] += dt

        setattr(owner, name, staticmethod(timed) if static else timed)
        self._undo.append((owner, name, original))

    def reset(self) -> None:
        self.self_s.clear()
        self.total_s.clear()
        self.calls.clear()

    def unwrap(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


def wrap_step_functions(timers: Timers, engine) -> None:
    """Timers on what one engine step calls, from the engine loop down to the kernels."""
    import corral.engine.model_runner as model_runner
    import corral.kernels as kernels
    import corral.layers.linear as linear
    import corral.layers.sampler as sampler
    import corral.models.llama as llama
    from corral.core.scheduler import Scheduler
    from corral.engine.llm_engine import LLMEngine
    from corral.engine.output_processor import OutputProcessor
    from corral.layers.embedding import Embedding
    from corral.layers.norm import RMSNorm
    from corral.layers.rotary import RotaryEmbedding

    try:
        import corral.kernels.ops as ops
    except ImportError:  # a checkout from before the fused ops
        ops = None
    qmatmul_module = sys.modules["corral.kernels.qmatmul"]  # the package's `qmatmul` is the function
    model_cls = type(engine.runner.model)
    targets = [
        ("engine step (rest)", LLMEngine, "step"),
        ("scheduler.schedule", Scheduler, "schedule"),
        ("scheduler.update_from_output", Scheduler, "update_from_output"),
        ("output processing", OutputProcessor, "process"),
        ("model runner (rest)", model_runner.ModelRunner, "execute"),
        ("prepare inputs", model_runner.ModelRunner, "_prepare"),
        ("sampling batch", model_runner, "_sampling_batch"),
        ("sampler", model_runner, "sample"),
        ("sampler argmax", sampler, "_argmax"),
        ("sampler: tokens to Python", model_runner, "_to_tokens"),
        ("model forward (rest)", model_cls, "forward"),
        ("compute_logits (rest)", model_cls, "compute_logits"),
        ("embedding", Embedding, "forward"),
        ("linear python", linear.Linear, "forward"),
        ("linear python", llama, "project_all"),
        ("kernel python wrapper", kernels, "qmatmul"),
        ("kernel python wrapper", kernels, "qmatmul_many"),
        ("kernel matmul", qmatmul_module._ext, "qmatmul"),
        ("kernel matmul", qmatmul_module._ext, "qmatmul_many"),
        ("kernel matmul", qmatmul_module._ext, "qmatmul_float"),
        ("decoder layers in one C call", qmatmul_module._ext, "decode_layers"),
        ("attention backend", type(engine.runner.backend), "forward"),
        ("norms (+ residual adds)", RMSNorm, "forward"),
        ("rotary (+ q/k/v bias, q/k norm)", RotaryEmbedding, "apply"),  # before the fused ops
        ("rotary (+ q/k/v bias, q/k norm)", ops, "bias_norm_rope_"),
        ("activation", llama, "gated"),
    ]
    for label, owner, name in targets:
        timers.wrap(label, owner, name)


def run_steps(engine, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        engine.step()
        times.append(time.perf_counter() - t0)
    return times


def start_sequences(engine, batch: int, prompt_tokens: int, max_tokens: int, seed: int = 0) -> None:
    from corral import SamplingParams

    rng = random.Random(seed)
    vocab = engine.model_config.vocab_size
    params = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=True)
    for _ in range(batch):
        engine.add_request([rng.randrange(1000, vocab - 1000) for _ in range(prompt_tokens)], params)
    engine.step()  # the prefill; every later step decodes one token per sequence


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a .gguf file or a Hugging Face folder")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--batch", type=int, default=1, help="sequences decoding together")
    p.add_argument("--steps", type=int, default=48, help="decode steps timed (each pass)")
    p.add_argument("--warmup", type=int, default=8)
    p.add_argument("--prompt-tokens", type=int, default=16)
    p.add_argument("--max-model-len", type=int, default=512)
    p.add_argument("--torch-profile", action="store_true", help="also print torch.profiler's op table")
    p.add_argument("--python-layers", action="store_true",
                   help="run a Llama-family model's layers from Python, not in one C call (llama_decode.py)")
    args = p.parse_args()

    from corral import LLM

    if args.threads:
        torch.set_num_threads(args.threads)
    llm = LLM(args.model, max_model_len=args.max_model_len, max_num_seqs=max(args.batch, 1),
              num_threads=args.threads)
    engine = llm.engine
    if args.python_layers and hasattr(engine.runner.model, "fused_decode"):
        engine.runner.model.fused_decode = False
    passes = 3 if args.torch_profile else 2
    per_seq = args.warmup + passes * args.steps + 2
    if args.prompt_tokens + per_seq > args.max_model_len:
        p.error(f"--prompt-tokens + {passes} x --steps + --warmup must fit --max-model-len {args.max_model_len}")
    start_sequences(engine, args.batch, args.prompt_tokens, per_seq)
    run_steps(engine, args.warmup)

    plain = run_steps(engine, args.steps)
    timers = Timers()
    wrap_step_functions(timers, engine)
    timed = run_steps(engine, args.steps)
    timers.unwrap()

    cfg = engine.model_config
    print(f"{args.model}: {cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, vocab {cfg.vocab_size}; "
          f"batch {args.batch}, threads {torch.get_num_threads()}, {args.steps} steps")
    print(f"step time: best {min(plain) * 1e3:.2f} ms, median {statistics.median(plain) * 1e3:.2f} ms, "
          f"mean {statistics.mean(plain) * 1e3:.2f} ms ({args.batch / statistics.median(plain):.1f} tok/s "
          f"at the median); with timers: median {statistics.median(timed) * 1e3:.2f} ms, "
          f"mean {statistics.mean(timed) * 1e3:.2f} ms (the table below is per-step means)")
    n = args.steps
    rows = sorted(timers.self_s.items(), key=lambda kv: -kv[1])
    print(f"\n{'per step':32s} {'ms':>8s} {'share':>7s} {'calls':>7s}")
    step_total = timers.total_s["engine step (rest)"]
    for label, s in rows:
        print(f"{label:32s} {s / n * 1e3:8.3f} {s / step_total:7.1%} {timers.calls[label] / n:7.0f}")
    print(f"{'engine step total':32s} {step_total / n * 1e3:8.3f}")
    print(f"{'  model forward total':32s} {timers.total_s['model forward (rest)'] / n * 1e3:8.3f}")
    print(f"{'  compute_logits total':32s} {timers.total_s['compute_logits (rest)'] / n * 1e3:8.3f}")
    kernel = timers.self_s["kernel matmul"]
    print(f"{'  all but kernel matmul':32s} {(step_total - kernel) / n * 1e3:8.3f}")

    if args.torch_profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run_steps(engine, args.steps)
        print()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))


if __name__ == "__main__":
    main()

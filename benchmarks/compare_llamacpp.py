"""corral against llama.cpp (through llama-cpp-python) on the same GGUF file, same thread count.

Three measurements, each as tokens per second for both engines and their ratio (corral / llama.cpp,
above 1 means corral is faster):
  - prompt processing: one prompt of --prompt-tokens tokens (default 512);
  - generation at batch 1: --gen-tokens tokens (default 128) after a short prompt;
  - batched generation: --parallel sequences (default 16) decoding --gen-tokens tokens together.
Generation is also shown as a share of the memory read bandwidth (a decode step reads about the
whole file once, or for a mixture of experts the file less the experts it does not pick: bytes per
step / read GB/s is the physical limit).

    pip install -e .[llamacpp]      # optional; builds llama.cpp from source
    python benchmarks/compare_llamacpp.py /tmp/corral-bench/qwen2.5-0.5b-q4_0.gguf --threads 2

Prompts are random token ids (no two runs share a prefix, so no cache helps either engine);
sampling is greedy and ignores end-of-sequence tokens. Each measurement keeps its best of --repeats.
On a shared machine, `--rounds 3` runs both engines three times, alternating which goes first, and
shows each figure's median and the median of the rounds' ratios.

`--interleave N` measures batch-1 generation once more, with both engines loaded in one process
taking turns: N bursts of --burst-tokens tokens each, alternating which goes first. Where the
machine's memory bandwidth swings (other tenants) over tens of seconds, a burst pair sees the same
phase, so the median of the pairs' ratios is steadier than whole runs taken minutes apart.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import random
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Rates:
    prompt_tok_s: float
    gen_tok_s: float
    batch_gen_tok_s: float


def random_prompt(rng: random.Random, n: int, vocab: int) -> list[int]:
    return [rng.randrange(1000, vocab - 1000) for _ in range(n)]


def bytes_per_decode_step(path: str) -> int:
    """Weight bytes one decode step reads: the whole file, except that of a mixture-of-experts
    layer's stacked experts (`*_exps`) a token reads only the `expert_used_count` it picks."""
    from corral.loader.gguf_file import GGUFFile

    gf = GGUFFile(path)
    arch = gf.architecture
    experts, used = gf.get(f"{arch}.expert_count"), gf.get(f"{arch}.expert_used_count")
    total = os.path.getsize(path)
    if experts and used:
        stacked = sum(t.n_bytes for name, t in gf.tensors.items() if "_exps." in name)
        total -= stacked - stacked * int(used) // int(experts)
    return total


def read_bandwidth(n_bytes: int = 1 << 30) -> float:
    a = torch.ones(n_bytes // 4)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        a.sum()
        best = min(best, time.perf_counter() - t0)
    return n_bytes / best / 1e9


# ---- corral ----

def keep_quantized(args) -> bool | None:
    """corral's `keep_quantized` for --keep-quantized: None lets the model choose."""
    return {"auto": None, "yes": True, "no": False}[args.keep_quantized]


def bench_corral(path: str, args, vocab_hint: int | None = None) -> Rates:
    from corral import LLM, SamplingParams

    seq_len = args.prompt_tokens + args.gen_tokens + 64
    llm = LLM(path, num_threads=args.threads, max_model_len=seq_len, max_num_seqs=max(16, args.parallel),
              max_num_batched_tokens=max(args.prompt_tokens, 512), kv_cache_memory=args.kv_cache_mib << 20,
              keep_quantized=keep_quantized(args))
    vocab = vocab_hint or llm.engine.model_config.vocab_size
    rng = random.Random(0)

    def run(prompts: list[list[int]], max_tokens: int) -> float:
        params = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=True)
        t0 = time.perf_counter()
        llm.generate([{"prompt_token_ids": p} for p in prompts], params)
        return time.perf_counter() - t0

    run([random_prompt(rng, 16, vocab)], 4)  # warm-up
    pp = min(run([random_prompt(rng, args.prompt_tokens, vocab)], 1) for _ in range(args.repeats))
    short = args.short_prompt
    one = min(run([random_prompt(rng, short, vocab)], 1) for _ in range(args.repeats))
    gen = min(run([random_prompt(rng, short, vocab)], args.gen_tokens) for _ in range(args.repeats))
    p = args.parallel
    one_b = min(run([random_prompt(rng, short, vocab) for _ in range(p)], 1) for _ in range(args.repeats))
    gen_b = min(run([random_prompt(rng, short, vocab) for _ in range(p)], args.gen_tokens) for _ in range(args.repeats))
    return Rates(
        prompt_tok_s=args.prompt_tokens / pp,
        gen_tok_s=(args.gen_tokens - 1) / (gen - one),
        batch_gen_tok_s=p * (args.gen_tokens - 1) / (gen_b - one_b),
    )


# ---- llama.cpp, through llama-cpp-python's C API ----

class LlamaCpp:
    """One llama.cpp context with room for `n_seq` sequences of `seq_len` tokens each."""

    def __init__(self, path: str, threads: int, n_seq: int, seq_len: int, n_batch: int):
        import llama_cpp as lc

        self.lc = lc
        self._quiet = lc.llama_log_callback(lambda level, text, user: None)  # kept alive: C holds it
        lc.llama_log_set(self._quiet, ctypes.c_void_p())
        lc.llama_backend_init()
        mp = lc.llama_model_default_params()
        self.model = lc.llama_model_load_from_file(path.encode(), mp)
        if not self.model:
            raise SystemExit(f"llama.cpp cannot load {path}")
        cp = lc.llama_context_default_params()
        cp.n_ctx = n_seq * seq_len
        cp.n_batch = n_batch
        cp.n_ubatch = n_batch
        cp.n_seq_max = n_seq
        cp.n_threads = threads
        cp.n_threads_batch = threads
        self.ctx = lc.llama_init_from_model(self.model, cp)
        self.vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(self.model))
        self.batch = lc.llama_batch_init(max(n_batch, n_seq), 0, n_seq)

    def close(self) -> None:
        self.lc.llama_batch_free(self.batch)
        self.lc.llama_free(self.ctx)
        self.lc.llama_model_free(self.model)

    def clear(self) -> None:
        lc = self.lc
        if hasattr(lc, "llama_memory_clear"):
            lc.llama_memory_clear(lc.llama_get_memory(self.ctx), True)
        else:
            lc.llama_kv_self_clear(self.ctx)

    def decode(self, items: list[tuple[int, int, int, bool]]) -> None:
        """items: (token, position, sequence, wants logits)."""
        b = self.batch
        b.n_tokens = len(items)
        for i, (tok, pos, seq, logits) in enumerate(items):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = logits
        if self.lc.llama_decode(self.ctx, b) != 0:
            raise RuntimeError("llama_decode failed")

    def argmax(self, i: int) -> int:
        ptr = self.lc.llama_get_logits_ith(self.ctx, i)
        return int(np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), (self.vocab,)).argmax())

    def prefill(self, prompts: list[list[int]], n_batch: int) -> list[int]:
        """Evaluate every prompt (sequence s = prompts[s]); return each one's greedy next token."""
        items = [(tok, pos, s, pos == len(p) - 1) for s, p in enumerate(prompts) for pos, tok in enumerate(p)]
        nxt = [0] * len(prompts)
        for start in range(0, len(items), n_batch):
            chunk = items[start:start + n_batch]
            self.decode(chunk)
            for i, (_, _, s, want) in enumerate(chunk):
                if want:
                    nxt[s] = self.argmax(i)
        return nxt

    def generate(self, prompts: list[list[int]], n_tokens: int, n_batch: int) -> None:
        nxt = self.prefill(prompts, n_batch)
        pos = [len(p) for p in prompts]
        for _ in range(n_tokens - 1):
            self.decode([(nxt[s], pos[s], s, True) for s in range(len(prompts))])
            nxt = [self.argmax(i) for i in range(len(prompts))]
            pos = [q + 1 for q in pos]


def bench_llamacpp(path: str, args) -> Rates:
    seq_len = args.prompt_tokens + args.gen_tokens + 64
    ll = LlamaCpp(path, args.threads, max(1, args.parallel), seq_len, n_batch=max(args.prompt_tokens, 512))
    vocab, nb, rng = ll.vocab, max(args.prompt_tokens, 512), random.Random(0)

    def run(prompts: list[list[int]], n_tokens: int) -> float:
        ll.clear()
        t0 = time.perf_counter()
        if n_tokens <= 1:
            ll.prefill(prompts, nb)
        else:
            ll.generate(prompts, n_tokens, nb)
        return time.perf_counter() - t0

    run([random_prompt(rng, 16, vocab)], 4)
    pp = min(run([random_prompt(rng, args.prompt_tokens, vocab)], 1) for _ in range(args.repeats))
    short = args.short_prompt
    one = min(run([random_prompt(rng, short, vocab)], 1) for _ in range(args.repeats))
    gen = min(run([random_prompt(rng, short, vocab)], args.gen_tokens) for _ in range(args.repeats))
    p = args.parallel
    one_b = min(run([random_prompt(rng, short, vocab) for _ in range(p)], 1) for _ in range(args.repeats))
    gen_b = min(run([random_prompt(rng, short, vocab) for _ in range(p)], args.gen_tokens) for _ in range(args.repeats))
    ll.close()
    return Rates(args.prompt_tokens / pp, (args.gen_tokens - 1) / (gen - one), p * (args.gen_tokens - 1) / (gen_b - one_b))


def interleave(path: str, args) -> None:
    """Batch-1 decode, corral and llama.cpp taking turns in bursts; prints each pair and the medians."""
    from corral import LLM, SamplingParams

    n = args.burst_tokens
    llm = LLM(path, num_threads=args.threads, max_model_len=n + 64, max_num_seqs=1,
              keep_quantized=keep_quantized(args))
    ll = LlamaCpp(path, args.threads, 1, n + 64, n_batch=64)
    rng = random.Random(1)

    def corral_run(tokens: int) -> float:
        params = SamplingParams(temperature=0, max_tokens=tokens, ignore_eos=True)
        prompt = random_prompt(rng, args.short_prompt, ll.vocab)
        t0 = time.perf_counter()
        llm.generate([{"prompt_token_ids": prompt}], params)
        return time.perf_counter() - t0

    def llamacpp_run(tokens: int) -> float:
        prompt = random_prompt(rng, args.short_prompt, ll.vocab)
        ll.clear()
        t0 = time.perf_counter()
        ll.generate([prompt], tokens, 64) if tokens > 1 else ll.prefill([prompt], 64)
        return time.perf_counter() - t0

    def ms_per_token(run) -> float:  # the prompt and first token's time taken out
        one = run(1)
        return (run(n + 1) - one) / n * 1000

    runs = {"corral": corral_run, "llama.cpp": llamacpp_run}
    for run in runs.values():
        run(8)
        run(n)  # every expert and page touched once before the first burst
    pairs = []
    for b in range(args.interleave):
        order = list(runs) if b % 2 == 0 else list(runs)[::-1]
        ms = {name: ms_per_token(runs[name]) for name in order}
        pairs.append(ms)
        print(f"burst {b + 1}/{args.interleave}: corral {ms['corral']:.2f} ms/token, llama.cpp {ms['llama.cpp']:.2f}, "
              f"ratio {ms['llama.cpp'] / ms['corral']:.2f}", flush=True)
    ratios = [m["llama.cpp"] / m["corral"] for m in pairs]
    co, lc = (statistics.median(m[k] for m in pairs) for k in ("corral", "llama.cpp"))
    print(f"interleaved generation, batch 1 ({n} tokens a burst, {len(pairs)} bursts each): "
          f"llama.cpp {1000 / lc:.1f}, corral {1000 / co:.1f} tok/s (medians); ratio median {statistics.median(ratios):.2f}, "
          f"lowest {min(ratios):.2f}, highest {max(ratios):.2f}")
    ll.close()


def print_table(args, rounds: list[dict[str, Rates]], names: list[str], step_bytes: int, bw: float) -> None:
    # each figure: the median over rounds; a ratio: the median of the rounds' own ratios
    results = {n: Rates(*(statistics.median(getattr(r[n], f) for r in rounds) for f in Rates.__dataclass_fields__))
               for n in names}
    rows = [
        (f"prompt processing ({args.prompt_tokens} tokens)", "prompt_tok_s", False),
        (f"generation, batch 1 ({args.gen_tokens} tokens)", "gen_tok_s", True),
        (f"generation, {args.parallel} sequences", "batch_gen_tok_s", False),
    ]
    print(f"{'':42} {'llama.cpp':>12} {'corral':>12} {'ratio':>7}")
    for label, field, show_bw in rows:
        vals = {name: getattr(r, field) for name, r in results.items()}
        ll, co = vals.get("llama.cpp"), vals.get("corral")
        line = f"{label:42} {(f'{ll:.1f}' if ll else '-'):>12} {(f'{co:.1f}' if co else '-'):>12}"
        if ll and co:
            line += f" {statistics.median(getattr(r['corral'], field) / getattr(r['llama.cpp'], field) for r in rounds):7.2f}"
        else:
            line += f" {'-':>7}"
        if show_bw:
            shares = ", ".join(f"{n} {v * step_bytes / 1e9 / bw:.0%}" for n, v in vals.items())
            line += f"   of read bandwidth: {shares}"
        print(line + "  tok/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a .gguf file both engines load")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--parallel", type=int, default=16, help="sequences decoding together")
    parser.add_argument("--short-prompt", type=int, default=16, help="prompt length for the generation runs")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run both engines this many times, alternating which goes first; medians are shown "
                             "(0: only --interleave)")
    parser.add_argument("--interleave", type=int, default=0, metavar="N",
                        help="also N bursts of batch-1 generation, the engines taking turns in one process")
    parser.add_argument("--burst-tokens", type=int, default=48, help="tokens a burst of --interleave generates")
    parser.add_argument("--kv-cache-mib", type=int, default=1024, help="corral's KV cache size")
    parser.add_argument("--skip", choices=["corral", "llamacpp"], help="measure only the other engine")
    parser.add_argument("--keep-quantized", choices=["auto", "yes", "no"], default="auto",
                        help="corral's weights: as the model chooses (auto; the bundled SmolLM2 loads dense), "
                             "kept quantized for the CPU kernels, or dequantized to float32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    file_bytes = os.path.getsize(args.model)
    step_bytes = bytes_per_decode_step(args.model)
    bw = read_bandwidth()
    print(f"model: {args.model} ({file_bytes / 2**20:.0f} MiB), threads: {args.threads}, read bandwidth {bw:.1f} GB/s")
    print(f"decode limit at batch 1: {bw * 1e9 / step_bytes:.1f} tok/s (one read of {step_bytes / 2**20:.0f} MiB "
          f"per step{'' if step_bytes == file_bytes else ': the file less the experts a token does not pick'})")
    benches = {"llama.cpp": bench_llamacpp, "corral": bench_corral}
    names = [n for n in benches if args.skip != {"llama.cpp": "llamacpp"}.get(n, n)]
    rounds: list[dict[str, Rates]] = []
    for r in range(args.rounds):  # alternating which engine goes first: a slow phase hits both
        rates = {}
        for name in (names if r % 2 == 0 else names[::-1]):
            rates[name] = benches[name](args.model, args)
            print(f"{name}: {rates[name]}", flush=True)
        rounds.append(rates)
    if rounds:
        print_table(args, rounds, names, step_bytes, bw)
    if args.interleave:
        interleave(args.model, args)


if __name__ == "__main__":
    main()

"""Resident memory and build time of a GGUF tokenizer with a vocabulary of real size.

The benchmark model files pad a small trained vocabulary with reserved control tokens; real
byte-level vocabularies are mostly BPE tokens and merges. This writes (once) a vocabulary-only GGUF
shaped like Qwen2.5's: 151,643 tokens built by 151,387 merges (random pairs of shorter tokens), 22
control tokens, [PAD] tokens up to 151,936; then, in this fresh process, builds the tokenizer from
it and reports the heap it keeps (RssAnon), before and after returning freed pages to the OS.

    python benchmarks/tokenizer_memory.py --vocab /tmp/corral-bench/vocab-151k.gguf
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import random
import sys
import time
from pathlib import Path

N_BPE, N_VOCAB = 151_643, 151_936
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [f"<|extra_{i}|>" for i in range(19)]


def write_vocab(path: Path) -> None:
    import gguf

    from corral.tokenizer.byte_level import byte_to_char

    rng = random.Random(0)
    alphabet = [byte_to_char()[b] for b in range(256)]
    tokens, seen, merges, short = list(alphabet), set(alphabet), [], list(alphabet)
    while len(tokens) < N_BPE:
        a = rng.choice(short if rng.random() < 0.7 else tokens)
        b = rng.choice(alphabet if rng.random() < 0.6 else short)
        if a + b in seen or len(a + b) > 16:
            continue
        seen.add(a + b)
        tokens.append(a + b)
        merges.append(f"{a} {b}")
        if len(a + b) <= 4:
            short.append(a + b)
    types = [1] * len(tokens) + [3] * len(SPECIALS)
    tokens += SPECIALS
    types += [5] * (N_VOCAB - len(tokens))
    tokens += [f"[PAD{i}]" for i in range(len(tokens), N_VOCAB)]
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def anon_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=Path, default=Path("/tmp/corral-bench/vocab-151k.gguf"))
    args = parser.parse_args()
    if not args.vocab.exists():
        args.vocab.parent.mkdir(parents=True, exist_ok=True)
        write_vocab(args.vocab)
        print(f"wrote {args.vocab}; run again in a fresh process to measure")
        return

    import tokenizers  # noqa: F401  (imported before the first reading, like jinja2 and numpy)

    from corral.loader.gguf_file import GGUFFile
    from corral.tokenizer import Tokenizer

    gc.collect()
    start = anon_mib()
    t0 = time.perf_counter()
    tokenizer = Tokenizer.from_gguf(GGUFFile(args.vocab))
    seconds = time.perf_counter() - t0
    gc.collect()
    kept = anon_mib() - start
    ctypes.CDLL(None).malloc_trim(0)
    trimmed = anon_mib() - start
    assert tokenizer.decode(tokenizer.encode("Hello world<|im_end|>"), False) == "Hello world<|im_end|>"
    print(f"{args.vocab}: {tokenizer.vocab_size} tokens, build {seconds:.1f} s, "
          f"heap +{kept:.1f} MiB, +{trimmed:.1f} MiB after malloc_trim")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()

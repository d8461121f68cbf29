"""Compare grammar libraries for constrained decoding: schema compile time and the cost of one
token mask at batch 1 and 16, over a vocabulary of Qwen2.5's size (151936 ids).

    python benchmarks/bench_grammar.py                 # llguidance, and xgrammar when installed
    python benchmarks/bench_grammar.py --libs llguidance --threads 2

The vocabulary is synthetic but shaped like a real byte-level BPE one: the 256 bytes, then the most
frequent words, numbers, punctuation runs and whitespace runs of Python's standard library source
(with and without a leading space), then 22 special tokens, padded with empty ids up to 151936 as
Qwen2.5's embedding is. Each step walks a valid JSON document token by token (greedy tokens), so
every mask is one a real decode would ask for.
"""
from __future__ import annotations

import argparse
import collections
import json
import pathlib
import re
import statistics
import sysconfig
import time

VOCAB_SIZE = 151936
NUM_TEXT_TOKENS = 151643

SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
     "required": ["name", "age"]},
    {"type": "object", "properties": {
        "id": {"type": "string", "pattern": "^[a-z]{3}-[0-9]{4}$"},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["red", "green", "blue"]}, "maxItems": 5},
        "address": {"type": "object", "properties": {"street": {"type": "string"}, "zip": {"type": "string"},
                                                      "city": {"type": "string"}}, "required": ["city"]},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "contact": {"anyOf": [{"type": "string", "format": "email"}, {"type": "null"}]},
    }, "required": ["id", "tags", "address", "score"]},
]
DOCS = [
    {"name": "Ada Lovelace", "age": 36},
    {"id": "abc-1234", "tags": ["red", "blue"], "address": {"street": "12 Main Street", "city": "Springfield"},
     "score": 0.75, "contact": None},
]


def synthetic_vocab() -> list[bytes]:
    counts: collections.Counter[bytes] = collections.Counter()
    pattern = re.compile(rb"[A-Za-z]+|[0-9]{1,3}|[^\sA-Za-z0-9]{1,3}|\s{1,8}")
    for path in sorted(pathlib.Path(sysconfig.get_paths()["stdlib"]).rglob("*.py"))[:3000]:
        data = path.read_bytes()
        for m in pattern.finditer(data):
            piece = m.group()
            counts[piece] += 1
            if piece[:1].isalpha():
                counts[b" " + piece] += 1
    tokens = [bytes([b]) for b in range(256)]
    seen = set(tokens)
    for piece, _ in counts.most_common():
        if len(tokens) >= NUM_TEXT_TOKENS:
            break
        if piece not in seen:
            seen.add(piece)
            tokens.append(piece)
    i = 0
    while len(tokens) < NUM_TEXT_TOKENS:  # the corpus ran out: longer words
        tokens.append(b" w%dx" % i)
        i += 1
    return tokens


def greedy_tokenize(text: bytes, index: dict[bytes, int], longest: int) -> list[int]:
    ids, i = [], 0
    while i < len(text):
        for n in range(min(longest, len(text) - i), 0, -1):
            tid = index.get(text[i:i + n])
            if tid is not None:
                ids.append(tid)
                i += n
                break
    return ids


def bench_llguidance(tokens, specials, docs_ids, threads: int) -> dict:
    import llguidance
    import llguidance.torch as lltorch
    import torch

    index = {t: i for i, t in enumerate(tokens)}
    longest = max(map(len, tokens))

    class Wrapper:
        eos_token_id = len(tokens)
        bos_token_id = None
        special_token_ids = list(range(len(tokens), len(tokens) + len(specials)))

        def __init__(self):
            self.tokens = tokens + specials + [b""] * (VOCAB_SIZE - len(tokens) - len(specials))

        def __call__(self, s):
            return greedy_tokenize(s if isinstance(s, bytes) else s.encode(), index, longest)

    t0 = time.perf_counter()
    tok = llguidance.LLTokenizer(llguidance.TokenizerWrapper(Wrapper()))
    tokenizer_s = time.perf_counter() - t0
    executor = llguidance.LLExecutor(num_threads=threads)
    out = {"tokenizer_s": tokenizer_s, "compile_ms": [], "mask_us": {}}
    for schema in SCHEMAS:
        t0 = time.perf_counter()
        m = llguidance.LLMatcher(tok, llguidance.LLMatcher.grammar_from_json_schema(schema))
        m.compute_bitmask()  # the first mask builds the lexer's first states: part of compiling
        out["compile_ms"].append((time.perf_counter() - t0) * 1e3)
    for batch in (1, 16):
        # As the engine does: one matcher per compiled schema, deep-copied for each request.
        templates = [llguidance.LLMatcher(tok, llguidance.LLMatcher.grammar_from_json_schema(s)) for s in SCHEMAS]
        matchers = [templates[i % len(templates)].deep_copy() for i in range(batch)]
        ids = [docs_ids[i % len(docs_ids)] for i in range(batch)]
        mask = lltorch.allocate_token_bitmask(batch, VOCAB_SIZE)
        times = []
        for step in range(min(len(x) for x in ids)):
            t0 = time.perf_counter()
            if batch == 1 or threads == 1:
                for i, m in enumerate(matchers):
                    lltorch.fill_next_token_bitmask(m, mask, i)
            else:
                lltorch.fill_next_token_bitmask_par(executor, [(m, i) for i, m in enumerate(matchers)], mask)
            times.append(time.perf_counter() - t0)
            for m, x in zip(matchers, ids):
                if not m.consume_token(x[step]):
                    raise RuntimeError(m.get_error())
        out["mask_us"][batch] = _summary(times)
    return out


def _summary(times: list[float]) -> str:
    times = sorted(times)
    return (f"median {statistics.median(times) * 1e6:.0f} us, mean {statistics.fmean(times) * 1e6:.0f} us, "
            f"max {times[-1] * 1e6:.0f} us")


def bench_xgrammar(tokens, specials, docs_ids, threads: int) -> dict:
    import xgrammar as xgr

    t0 = time.perf_counter()
    info = xgr.TokenizerInfo(tokens + specials, xgr.VocabType.RAW, vocab_size=VOCAB_SIZE,
                             stop_token_ids=[len(tokens)])
    compiler = xgr.GrammarCompiler(info, max_threads=threads, cache_enabled=False)
    tokenizer_s = time.perf_counter() - t0
    out = {"tokenizer_s": tokenizer_s, "compile_ms": [], "mask_us": {}}
    compiled = []
    for schema in SCHEMAS:
        t0 = time.perf_counter()
        compiled.append(compiler.compile_json_schema(json.dumps(schema), any_whitespace=True))
        out["compile_ms"].append((time.perf_counter() - t0) * 1e3)
    for batch in (1, 16):
        matchers = [xgr.GrammarMatcher(compiled[i % len(compiled)]) for i in range(batch)]
        ids = [docs_ids[i % len(docs_ids)] for i in range(batch)]
        mask = xgr.allocate_token_bitmask(batch, VOCAB_SIZE)
        batch_matcher = None
        if batch > 1 and threads > 1 and hasattr(xgr, "BatchGrammarMatcher"):
            batch_matcher = xgr.BatchGrammarMatcher(max_threads=threads)
        times = []
        for step in range(min(len(x) for x in ids)):
            t0 = time.perf_counter()
            if batch_matcher is not None:
                batch_matcher.batch_fill_next_token_bitmask(matchers, mask)
            else:
                for i, m in enumerate(matchers):
                    m.fill_next_token_bitmask(mask, i)
            times.append(time.perf_counter() - t0)
            for m, x in zip(matchers, ids):
                if not m.accept_token(x[step]):
                    raise RuntimeError("xgrammar rejected a valid token")
        out["mask_us"][batch] = _summary(times)
    return out


def bench_apply(repeats: int = 50) -> dict:
    """The sampler's side: -inf on the forbidden tokens of each constrained row."""
    import sys

    import torch

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
    from corral.layers.sampler import _apply_bitmasks

    out = {}
    words = (VOCAB_SIZE + 31) // 32
    for batch in (1, 16):
        logits = torch.randn(batch, VOCAB_SIZE)
        masks = [(i, torch.randint(-2**31, 2**31 - 1, (words,), dtype=torch.int32)) for i in range(batch)]
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            _apply_bitmasks(logits, masks)
            times.append(time.perf_counter() - t0)
        out[batch] = _summary(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--libs", nargs="+", default=["llguidance", "xgrammar"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    tokens = synthetic_vocab()
    specials = [b"<|endoftext|>", b"<|im_start|>", b"<|im_end|>"] + [b"<|special_%d|>" % i for i in range(19)]
    index = {t: i for i, t in enumerate(tokens)}
    longest = max(map(len, tokens))
    docs_ids = [greedy_tokenize(json.dumps(d).encode(), index, longest) for d in DOCS]
    print(f"vocabulary: {len(tokens)} text tokens, {len(specials)} special, {VOCAB_SIZE} ids; "
          f"documents of {[len(d) for d in docs_ids]} tokens")
    applied = bench_apply()
    print(f"applying the masks to the logits (corral's sampler): batch 1 {applied[1]}; batch 16 {applied[16]}")
    for lib in args.libs:
        try:
            fn = bench_llguidance if lib == "llguidance" else bench_xgrammar
            r = fn(tokens, specials, docs_ids, args.threads)
        except ImportError as e:
            print(f"{lib}: not installed ({e})")
            continue
        compile_ms = ", ".join(f"{c:.1f}" for c in r["compile_ms"])
        print(f"{lib}: tokenizer {r['tokenizer_s'] * 1e3:.0f} ms; schema compile {compile_ms} ms; "
              f"mask per step: batch 1 {r['mask_us'][1]}; batch 16 {r['mask_us'][16]}")


if __name__ == "__main__":
    main()

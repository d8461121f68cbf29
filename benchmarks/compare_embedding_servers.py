"""Embeddings per second: `corral serve` against llama.cpp's `llama-server --embedding` on one BERT GGUF.

A BERT-base-shaped random model (hidden 768, 12 layers, 12 heads, intermediate 3072, vocab 30522,
512 positions; mean pooling) is written as a GGUF file the way llama.cpp's converter writes BERT
(tensor names from the `gguf` package's map, `bert.pooling_type`, a WordPiece vocabulary), unless
`--model` names one. N inputs of T token ids ([CLS], T-2 random ids, [SEP]) are posted to
`POST /v1/embeddings` as token-id lists, `--batch` inputs per request, one request after another
(as an indexing client does), the same requests to both servers. Each server runs alone with
`--threads` threads: corral with CORRAL_NUM_THREADS/OMP_NUM_THREADS, llama-server with -t/-tb and a
slot per input of a request. One warm-up request, then the whole set is timed. Printed: embeddings/s
of each, corral's over llama-server's (above 1: corral is faster), and the lowest cosine similarity
between the two servers' vectors of the same input (they run the same float32 weights); below
--min-cosine the script exits with an error.

    bash benchmarks/build_llama_server.sh             # once: /tmp/llama-server/bin/llama-server
    .venv/bin/python benchmarks/compare_embedding_servers.py --inputs 512 --tokens 128 --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from compare_servers import free_port, stop, wait_healthy

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CLS, SEP = 2, 3


def write_bert_gguf(out: Path, hidden: int, layers: int, heads: int, intermediate: int, vocab: int,
                    positions: int, seed: int = 0) -> Path:
    """A random-weight BERT encoder as llama.cpp's converter writes one (F32, mean pooling)."""
    import gguf

    rng = np.random.default_rng(seed)

    def randn(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    writer = gguf.GGUFWriter(str(out), "bert")
    writer.add_context_length(positions)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(intermediate)
    writer.add_head_count(heads)
    writer.add_layer_norm_eps(1e-12)
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    tokens = SPECIALS + [f"\u2581w{i}" for i in range(len(SPECIALS), vocab)]
    writer.add_tokenizer_model("bert")
    writer.add_token_type_count(2)
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL] * len(SPECIALS) + [gguf.TokenType.NORMAL] * (vocab - len(SPECIALS)))
    writer.add_bos_token_id(CLS)
    writer.add_sep_token_id(SEP)
    writer.add_pad_token_id(0)
    writer.add_unk_token_id(1)
    writer.add_mask_token_id(4)
    writer.add_add_bos_token(True)
    writer.add_bool(gguf.Keys.Tokenizer.ADD_SEP, True)
    ones = np.ones(hidden, dtype=np.float32)
    zeros = np.zeros(hidden, dtype=np.float32)
    writer.add_tensor("token_embd.weight", randn(vocab, hidden))
    writer.add_tensor("position_embd.weight", randn(positions, hidden))
    writer.add_tensor("token_types.weight", randn(2, hidden))
    writer.add_tensor("token_embd_norm.weight", ones)
    writer.add_tensor("token_embd_norm.bias", zeros)
    for i in range(layers):
        p = f"blk.{i}."
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(p + name + ".weight", randn(hidden, hidden))
            writer.add_tensor(p + name + ".bias", randn(hidden))
        writer.add_tensor(p + "ffn_up.weight", randn(intermediate, hidden))
        writer.add_tensor(p + "ffn_up.bias", randn(intermediate))
        writer.add_tensor(p + "ffn_down.weight", randn(hidden, intermediate))
        writer.add_tensor(p + "ffn_down.bias", randn(hidden))
        for norm in ("attn_output_norm", "layer_output_norm"):
            writer.add_tensor(p + norm + ".weight", ones)
            writer.add_tensor(p + norm + ".bias", zeros)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def post_embeddings(url: str, model: str, batch: list[list[int]]) -> list[list[float]]:
    body = json.dumps({"model": model, "input": batch, "encoding_format": "float"}).encode()
    req = urllib.request.Request(url + "/v1/embeddings", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3600) as r:
        data = json.loads(r.read())["data"]
    return [d["embedding"] for d in sorted(data, key=lambda d: d["index"])]


def timed_run(url: str, model: str, seqs: list[list[int]], batch: int) -> tuple[float, np.ndarray]:
    """(seconds, vectors) for every input, `batch` per request, after one warm-up request."""
    post_embeddings(url, model, seqs[:batch])
    start = time.perf_counter()
    vectors = []
    for i in range(0, len(seqs), batch):
        vectors += post_embeddings(url, model, seqs[i:i + batch])
    return time.perf_counter() - start, np.asarray(vectors, dtype=np.float64)


def run_corral(model: str, seqs: list[list[int]], args) -> tuple[float, np.ndarray]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, CORRAL_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, "-m", "corral.cli.main", "serve", model, "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env)
    try:
        wait_healthy(url, proc)
        return timed_run(url, model, seqs, args.batch)
    finally:
        stop(proc)


def run_llama_server(model: str, seqs: list[list[int]], args) -> tuple[float, np.ndarray]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tokens = args.batch * args.tokens  # a slot per input of a request, all in one physical batch
    cmd = [args.llama_server, "-m", model, "--embedding", "--port", str(port), "-t", str(args.threads),
           "-tb", str(args.threads), "-np", str(args.batch), "-c", str(tokens), "-b", str(tokens), "-ub", str(tokens),
           "--log-disable"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(url, proc)
        return timed_run(url, model, seqs, args.batch)
    finally:
        stop(proc)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="a BERT GGUF (default: write the random BERT-base one)")
    p.add_argument("--llama-server", default="/tmp/llama-server/bin/llama-server")
    p.add_argument("--inputs", type=int, default=512)
    p.add_argument("--tokens", type=int, default=128, help="tokens per input, [CLS] and [SEP] included")
    p.add_argument("--batch", type=int, default=32, help="inputs per request")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--intermediate", type=int, default=3072)
    p.add_argument("--vocab", type=int, default=30522)
    p.add_argument("--min-cosine", type=float, default=0.999, help="fail below this agreement of the vectors")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(write_bert_gguf(Path(tmp) / "bert-random.gguf", args.hidden, args.layers, args.heads,
                                                  args.intermediate, args.vocab, positions=max(512, args.tokens)))
        rng = np.random.default_rng(1)
        seqs = [[CLS, *rng.integers(len(SPECIALS), args.vocab, args.tokens - 2).tolist(), SEP]
                for _ in range(args.inputs)]
        corral_s, ours = run_corral(model, seqs, args)
        print(f"corral serve: {args.inputs / corral_s:.1f} embeddings/s ({corral_s:.1f} s)", flush=True)
        peer_s, theirs = run_llama_server(model, seqs, args)
        print(f"llama-server: {args.inputs / peer_s:.1f} embeddings/s ({peer_s:.1f} s)", flush=True)
    cosine = min_cosine(ours, theirs)
    print(f"{args.inputs} inputs x {args.tokens} tokens, {args.batch} per request, {args.threads} threads: "
          f"corral {args.inputs / corral_s:.1f} embeddings/s, llama-server {args.inputs / peer_s:.1f} embeddings/s, "
          f"ratio {peer_s / corral_s:.2f}x, min cosine {cosine:.6f}")
    if not cosine >= args.min_cosine:
        sys.exit(f"the servers' vectors disagree: min cosine {cosine:.6f} < {args.min_cosine}")


if __name__ == "__main__":
    main()

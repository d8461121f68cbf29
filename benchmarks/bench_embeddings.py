"""Embeddings per second: corral's encoder against transformers' BertModel on the same weights.

A BERT-base-shaped random model (hidden 768, 12 layers, 12 heads, intermediate 3072, vocab 30522)
is written as a sentence-transformers-style folder (mean pooling, Normalize) in a temporary
directory; N inputs of T random token ids (with [CLS]/[SEP]) are embedded by
`corral.engine.embedder.Embedder.embed_ids` and by transformers (same batches, float32, SDPA),
each timed once after a warm-up batch.

    .venv/bin/python benchmarks/bench_embeddings.py --inputs 512 --tokens 128 --threads 2
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def build(folder: Path) -> None:
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    config = transformers.BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                     intermediate_size=3072, max_position_embeddings=512)
    torch.manual_seed(0)
    transformers.BertModel(config).eval().save_pretrained(str(folder))
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, **{f"w{i}": i for i in range(4, 30522)}}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.save(str(folder / "tokenizer.json"))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 768,
                                                                   "pooling_mode_mean_tokens": True}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", type=int, default=512)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32, help="transformers batch size (corral batches by tokens)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    from corral.engine.embedder import Embedder
    from corral.engine.embedding_loader import load_embedding_model

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build(folder)
        g = torch.Generator().manual_seed(1)
        seqs = [[2, *torch.randint(4, 30522, (args.tokens - 2,), generator=g).tolist(), 3] for _ in range(args.inputs)]

        embedder = Embedder(load_embedding_model(folder), max_batch_tokens=args.batch * args.tokens)
        embedder.embed_ids(seqs[:args.batch])
        start = time.perf_counter()
        ours = embedder.embed_ids(seqs)
        corral_s = time.perf_counter() - start

        model = transformers.BertModel.from_pretrained(str(folder), attn_implementation="sdpa").eval()
        ids = torch.tensor(seqs)
        with torch.inference_mode():
            model(input_ids=ids[:args.batch])
            start = time.perf_counter()
            outs = []
            for i in range(0, len(seqs), args.batch):
                hidden = model(input_ids=ids[i:i + args.batch]).last_hidden_state
                outs.append(torch.nn.functional.normalize(hidden.mean(dim=1), dim=-1))
            hf_s = time.perf_counter() - start
        cos = torch.nn.functional.cosine_similarity(ours, torch.cat(outs)).min().item()
    n = args.inputs
    print(f"{n} inputs x {args.tokens} tokens, {args.threads} threads: corral {n / corral_s:.1f} embeddings/s "
          f"({corral_s:.1f} s), transformers {n / hf_s:.1f} embeddings/s ({hf_s:.1f} s), "
          f"ratio {hf_s / corral_s:.2f}x, min cosine {cos:.6f}")


if __name__ == "__main__":
    main()

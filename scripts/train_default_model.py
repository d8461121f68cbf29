"""Train corral's bundled default model from the running Python's standard library.

The model is a tiny Qwen2-architecture decoder that corral ships so `corral run` works on a
machine with no network. It is trained here, from nothing but text that comes with every Python:
the standard library's docstrings (as plain text and as ChatML question/answer turns) and some of
its source. It writes Python-docstring-flavoured text; it is not a useful assistant.

    python scripts/train_default_model.py --minutes 30 --out corral/assets/corral-mini.gguf

Steps: collect the corpus (deterministic order), train a byte-level BPE tokenizer, train the
model for a wall-clock budget on one CPU thread, save a Hugging Face folder under --build-dir,
then write GGUF with `corral.loader.gguf_export.export_gguf`. `--export-only HF_DIR` runs only
the last step.
"""
from __future__ import annotations

import os

# One thread everywhere: the tokenizer library's thread pool and torch's intra-op pool.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import ast
import json
import math
import random
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]

# Qwen2's pre-tokenizer split (GPT-4 style, single digits), so GGUF readers can name it "qwen2".
PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Plain ChatML, no default system message (the model never saw one in training).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

SKIPPED_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__", "lib2to3"}

QUESTIONS = (
    "What does {name} do?",
    "Explain {name}.",
    "What is {name}?",
    "How do I use {name}?",
    "Tell me about {name}.",
    "Describe {name}.",
)


@dataclass(frozen=True)
class Corpus:
    docs: list[str]  # "name(signature)\n\ndocstring" as plain text
    chats: list[str]  # ChatML user/assistant turns about one name
    sources: list[str]  # whole module sources


# ---------------------------------------------------------------------------------------------
# Corpus


def stdlib_files() -> list[Path]:
    """Every .py file of the running Python's standard library outside tests, sorted."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        files += [Path(dirpath) / f for f in filenames if f.endswith(".py")]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def module_name(path: Path) -> str:
    root = Path(sysconfig.get_paths()["stdlib"])
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    args = ast.unparse(node.args)
    return f"({args})"


def documented_names(tree: ast.Module, modname: str):
    """Yield (qualified name, header line, docstring) for the module, its classes and functions."""
    doc = ast.get_docstring(tree)
    if doc:
        yield modname, f"Module {modname}", doc

    def walk(body, prefix: str):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}.{node.name}"
                doc = ast.get_docstring(node)
                if doc:
                    yield name, f"def {name}{signature(node)}", doc
            elif isinstance(node, ast.ClassDef):
                name = f"{prefix}.{node.name}"
                doc = ast.get_docstring(node)
                if doc:
                    yield name, f"class {name}", doc
                yield from walk(node.body, name)

    yield from walk(tree.body, modname)


def collect_corpus(chat_share: float, source_chars: int, seed: int) -> Corpus:
    """Docstrings of every public stdlib module, a seeded share of them as chats, and whole
    module sources (seeded sample) up to `source_chars` characters."""
    rng = random.Random(seed)
    docs, chats, sources = [], [], []
    for path in stdlib_files():
        try:
            text = path.read_text(encoding="utf-8")
            tree = ast.parse(text)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        modname = module_name(path)
        if modname.startswith("_") or "._" in modname:
            continue  # private modules: little prose, much noise
        sources.append(f"# {modname}\n{text}")
        for name, header, doc in documented_names(tree, modname):
            if len(doc) < 20:
                continue
            docs.append(f"{header}\n\n{doc}")
            if rng.random() < chat_share:
                question = rng.choice(QUESTIONS).format(name=name)
                chats.append(
                    f"{IM_START}user\n{question}{IM_END}\n"
                    f"{IM_START}assistant\n{header}\n\n{doc}{IM_END}\n"
                )
    random.Random(seed).shuffle(sources)
    kept, total = [], 0
    for text in sources:
        if total + len(text) > source_chars:
            continue
        kept.append(text)
        total += len(text)
    return Corpus(docs, chats, kept)


# ---------------------------------------------------------------------------------------------
# Tokenizer


def train_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers import processors, trainers

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def save_tokenizer(tok, out_dir: Path) -> None:
    tok.save(str(out_dir / "tokenizer.json"))
    added = {
        str(tok.token_to_id(t)): {
            "content": t, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": True,
        }
        for t in SPECIAL_TOKENS
    }
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "additional_special_tokens": [IM_START, IM_END],
        "bos_token": None,
        "eos_token": IM_END,
        "pad_token": ENDOFTEXT,
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 2048,
        "split_special_tokens": False,
        "chat_template": CHAT_TEMPLATE,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special_map = {
        "additional_special_tokens": [IM_START, IM_END],
        "eos_token": IM_END,
        "pad_token": ENDOFTEXT,
    }
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# Model and training


def build_model(vocab_size: int, args, eos_id: int, pad_id: int):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        head_dim=args.hidden // args.heads,
        max_position_embeddings=2048,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        hidden_act="silu",
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        use_cache=True,
        attn_implementation="sdpa",
    )
    return Qwen2ForCausalLM(config)


def token_stream(tok, texts: list[str], eot_id: int):
    """Concatenate the texts' token ids, each followed by <|endoftext|>, as one int32 tensor."""
    import torch

    ids: list[int] = []
    for enc in tok.encode_batch(texts, add_special_tokens=False):
        ids += enc.ids
        ids.append(eot_id)
    return torch.tensor(ids, dtype=torch.int32)


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def evaluate(model, data, seq_len: int, batches: int, batch_size: int, seed: int) -> float:
    import torch

    gen = torch.Generator().manual_seed(seed)
    model.eval()
    losses = []
    with torch.no_grad():
        for _ in range(batches):
            x = sample_batch(data, seq_len, batch_size, gen)
            losses.append(model(input_ids=x, labels=x).loss.item())
    model.train()
    return sum(losses) / len(losses)


def sample_batch(data, seq_len: int, batch_size: int, gen):
    import torch

    starts = torch.randint(0, len(data) - seq_len - 1, (batch_size,), generator=gen)
    return torch.stack([data[s : s + seq_len] for s in starts.tolist()]).long()  # (B, T)


def train(args) -> Path:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    build = Path(args.build_dir)
    hf_dir = build / "hf"
    hf_dir.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    corpus = collect_corpus(args.chat_share, args.source_chars, args.seed)
    print(f"corpus: {len(corpus.docs)} docstrings, {len(corpus.chats)} chat turns, "
          f"{len(corpus.sources)} modules from Python {sys.version.split()[0]}", flush=True)

    tok = train_tokenizer(corpus.docs + corpus.chats + corpus.sources, args.vocab)
    save_tokenizer(tok, hf_dir)
    vocab_size = tok.get_vocab_size()
    eot_id, eos_id = tok.token_to_id(ENDOFTEXT), tok.token_to_id(IM_END)
    print(f"tokenizer: {vocab_size} tokens ({time.time() - t0:.0f}s)", flush=True)

    # Docstrings and chats are the point; source is a minority that teaches Python syntax.
    rng = random.Random(args.seed)
    texts = corpus.docs + corpus.chats + corpus.sources
    rng.shuffle(texts)
    n_val = max(20, len(texts) // 100)
    train_data = token_stream(tok, texts[n_val:], eot_id)
    val_data = token_stream(tok, texts[:n_val], eot_id)
    chars = sum(len(t) for t in texts)
    print(f"tokens: {len(train_data)} train, {len(val_data)} val "
          f"({chars / (len(train_data) + len(val_data)):.2f} chars/token)", flush=True)

    model = build_model(vocab_size, args, eos_id, eot_id)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: Qwen2 {args.layers} layers, hidden {args.hidden}, {args.heads}/{args.kv_heads} "
          f"heads, {n_params / 1e6:.2f}M parameters", flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.95), eps=1e-8,
    )
    gen = torch.Generator().manual_seed(args.seed)
    budget_s = args.minutes * 60
    total_steps = args.steps  # fixed after timing the first steps unless given
    train_start = time.time()
    step = 0
    next_checkpoint = train_start + args.checkpoint_minutes * 60
    while total_steps is None or step < total_steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total_steps or 10**9, args.lr, args.warmup)
        x = sample_batch(train_data, args.seq_len, args.batch, gen)  # (B, T)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        elapsed = time.time() - train_start
        if total_steps is None and step == 20:
            total_steps = max(step + 1, int(budget_s / (elapsed / step)))
            print(f"timing: {elapsed / step:.2f}s/step -> {total_steps} steps", flush=True)
        if step % args.log_every == 0 or step == total_steps:
            print(f"step {step}/{total_steps} loss {loss.item():.3f} "
                  f"lr {opt.param_groups[0]['lr']:.2e} {elapsed / 60:.1f}min", flush=True)
        if time.time() > next_checkpoint:
            model.save_pretrained(build / "checkpoint")
            next_checkpoint += args.checkpoint_minutes * 60

    val_loss = evaluate(model, val_data, args.seq_len, 20, args.batch, args.seed)
    train_loss = evaluate(model, train_data, args.seq_len, 20, args.batch, args.seed)
    minutes = (time.time() - train_start) / 60
    print(f"final: train loss {train_loss:.3f}, val loss {val_loss:.3f}, "
          f"{step} steps, {step * args.batch * args.seq_len} tokens, {minutes:.1f}min", flush=True)

    model.generation_config.eos_token_id = [eos_id, eot_id]
    model.generation_config.pad_token_id = eot_id
    model.save_pretrained(hf_dir, safe_serialization=True)
    summary = {
        "python": sys.version.split()[0], "parameters": n_params, "vocab_size": vocab_size,
        "steps": step, "tokens_seen": step * args.batch * args.seq_len,
        "train_tokens": len(train_data), "train_loss": round(train_loss, 4),
        "val_loss": round(val_loss, 4), "minutes": round(minutes, 1), "args": vars(args),
    }
    (build / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"saved {hf_dir}", flush=True)
    return hf_dir


# ---------------------------------------------------------------------------------------------
# Export


MAX_BYTES = 20 * 1024 * 1024


def export(hf_dir: Path, out: Path, weight_type: str) -> None:
    try:
        from corral.loader.gguf_export import export_gguf
    except ImportError:
        sys.exit(f"corral.loader.gguf_export is not available; export later with "
                 f"--export-only {hf_dir}")
    if weight_type == "auto":
        cfg = json.loads((hf_dir / "config.json").read_text())
        from safetensors import safe_open

        with safe_open(hf_dir / "model.safetensors", "pt") as f:
            n_params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
        # F16 when it fits with room for the tokenizer; Q8_0 (8.5 bits per weight) otherwise.
        weight_type = "F16" if 2 * n_params < MAX_BYTES - (2 << 20) else "Q8_0"
        print(f"{n_params / 1e6:.2f}M parameters, vocab {cfg['vocab_size']} -> {weight_type}")
    out.parent.mkdir(parents=True, exist_ok=True)
    export_gguf(hf_dir, out, weight_type, name="corral-mini")
    size = out.stat().st_size
    print(f"wrote {out} ({size / 1e6:.2f} MB, {weight_type})")
    if size > MAX_BYTES:
        sys.exit(f"{out} is {size} bytes, over the {MAX_BYTES}-byte limit")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0, help="training wall-clock budget")
    p.add_argument("--steps", type=int, default=None, help="fixed step count (overrides timing)")
    p.add_argument("--out", default="corral/assets/corral-mini.gguf")
    p.add_argument("--build-dir", default="/tmp/corral-train")
    p.add_argument("--export-only", metavar="HF_DIR", help="skip training; export this folder")
    p.add_argument("--weight-type", default="auto", choices=["auto", "F16", "Q8_0"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--intermediate", type=int, default=768)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--chat-share", type=float, default=0.3,
                   help="share of docstrings also written as a ChatML question and answer")
    p.add_argument("--source-chars", type=int, default=3_000_000,
                   help="characters of module source to include beside the docstrings")
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--checkpoint-minutes", type=float, default=10.0)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    hf_dir = Path(args.export_only) if args.export_only else train(args)
    export(hf_dir, Path(args.out), args.weight_type)


if __name__ == "__main__":
    main()

"""The regex splits llama.cpp applies before byte-level BPE, by GGUF `tokenizer.ggml.pre` name.

Each pre-tokenizer is a list of regexes applied in turn: every regex splits each piece left by the
previous one, keeping matches and the text between them as separate pieces (Hugging Face
`Split(..., behavior="isolated")`). Patterns are the ones in the models' tokenizer.json files, which
llama.cpp mirrors (it rewrites `(?i:...)` and `\\p{Lu}` for its own regex engine; Oniguruma, which
`tokenizers` uses, takes the originals).
"""
from __future__ import annotations

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
TEKKEN = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
GPT4O = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
DEEPSEEK_CODER = [r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", r"[一-龥ࠀ-一가-퟿]+", r"\p{N}"]
DEEPSEEK_V3 = [
    r"\p{N}{1,3}",
    r"[一-龥぀-ゟ゠-ヿ]+",
    r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
    r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
]
DEFAULT = [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"]
STARCODER = [r"\p{N}", GPT2]
FALCON = [r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"]

_BY_NAME: dict[str, list[str]] = {"default": DEFAULT}
for _names, _regexes in [
    (("llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
      "dbrx", "smaug-bpe", "chatglm-bpe", "glm4"), [LLAMA3]),
    (("qwen2", "deepseek-r1-qwen", "megrez", "stablelm2", "hunyuan", "kormo"), [QWEN2]),
    (("gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
      "mellum", "mpt", "olmo", "jais", "trillion", "exaone4", "jina-v1-en", "jina-v2-code",
      "roberta-bpe"), [GPT2]),
    (("starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"), STARCODER),
    (("falcon",), FALCON),
    (("deepseek-coder",), DEEPSEEK_CODER),
    (("deepseek-v3", "hunyuan-dense"), DEEPSEEK_V3),
    (("tekken",), [TEKKEN]),
    (("gpt-4o", "llama4", "minimax-m2"), [GPT4O]),
]:
    for _name in _names:
        _BY_NAME[_name] = _regexes

# Names for which llama.cpp looks a whole pre-token up in the vocabulary before merging
# (Hugging Face BPE `ignore_merges`) and adds BOS unless the file says otherwise.
IGNORE_MERGES = frozenset({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                           "midm-2.0", "lfm2", "tekken"})
ADD_BOS_BY_DEFAULT = IGNORE_MERGES


def split_regexes(pre: str | None) -> list[str] | None:
    """The regexes for `tokenizer.ggml.pre` name `pre`, or None when corral does not know it."""
    return _BY_NAME.get(pre or "default")


def name_for_regexes(regexes: list[str]) -> str | None:
    """The `tokenizer.ggml.pre` name whose splits are exactly `regexes` (for the GGUF exporter)."""
    preferred = {"llama-bpe", "qwen2", "gpt-2", "starcoder", "falcon", "deepseek-coder",
                 "deepseek-v3", "tekken", "gpt-4o", "default"}
    for name, known in _BY_NAME.items():
        if name in preferred and known == regexes:
            return name
    return None

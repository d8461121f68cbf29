"""Pick the GGUF file(s) of a Hub repo that a quantization tag asks for.

A repo usually holds one file per quantization (`model-Q4_K_M.gguf`), sometimes split in parts
(`model-Q8_0-00001-of-00002.gguf`). The tag matches a file's quantization case-insensitively;
`latest` picks the most preferred quantization present (QUANT_PREFERENCE).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from corral.errors import RemoteModelNotFoundError

# Best first: small and fast K-quants, then bigger or older formats, then unquantized.
QUANT_PREFERENCE = (
    "Q4_K_M", "Q4_K_S", "Q5_K_M", "Q5_K_S", "Q4_0", "Q6_K", "Q8_0", "Q4_1", "Q5_0", "Q5_1",
    "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K", "IQ4_XS", "IQ4_NL", "F16", "BF16", "F32",
)
DEFAULT_QUANT = QUANT_PREFERENCE[0]
_QUANT = re.compile(r"(?<![A-Za-z0-9])(I?Q[1-8](?:_[A-Za-z0-9]+)*|BF16|FP16|F16|FP32|F32)(?![A-Za-z0-9])", re.I)
_SPLIT = re.compile(r"^(?P<base>.+)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$", re.I)


@dataclass(frozen=True)
class GGUFChoice:
    """One quantization of the model: its files in part order (one unless split)."""

    quant: str  # upper case, "" when the file name names none
    files: tuple[str, ...]  # repo paths


def quant_of(filename: str) -> str:
    """The quantization a GGUF file name states (upper case, FP16 -> F16), or ""."""
    matches = _QUANT.findall(PurePosixPath(filename).name)
    if not matches:
        return ""
    quant = matches[-1].upper()
    return {"FP16": "F16", "FP32": "F32"}.get(quant, quant)


def gguf_choices(repo_files: list[str]) -> list[GGUFChoice]:
    """Group a repo's GGUF files into choices; vision projectors and incomplete splits are left out."""
    singles: list[GGUFChoice] = []
    splits: dict[tuple[str, int], dict[int, str]] = {}
    for path in repo_files:
        name = PurePosixPath(path).name
        if not name.lower().endswith(".gguf") or name.lower().startswith("mmproj"):
            continue
        m = _SPLIT.match(path)
        if m:
            parts = splits.setdefault((m["base"], int(m["count"])), {})
            parts[int(m["part"])] = path
        else:
            singles.append(GGUFChoice(quant_of(path), (path,)))
    for (base, count), parts in splits.items():
        if sorted(parts) == list(range(1, count + 1)):
            singles.append(GGUFChoice(quant_of(base + ".gguf"), tuple(parts[i] for i in sorted(parts))))
    return sorted(singles, key=lambda c: (_rank(c.quant), len(c.files[0]), c.files[0]))


def select_gguf(repo: str, repo_files: list[str], tag: str) -> GGUFChoice:
    """The choice `tag` names (`latest` = most preferred); RemoteModelNotFoundError (a StoreError) listing the available ones."""
    choices = gguf_choices(repo_files)
    if not choices:
        raise RemoteModelNotFoundError(f"repository {repo} has no GGUF files; pull {repo} (without hf.co/) for a safetensors folder")
    if tag.lower() == "latest":
        return choices[0]
    wanted = tag.upper()
    exact = [c for c in choices if c.quant == wanted]
    if exact:
        return exact[0]
    loose = [c for c in choices if tag.lower() in PurePosixPath(c.files[0]).name.lower()]
    if loose:
        return loose[0]
    raise RemoteModelNotFoundError(
        f"repository {repo} has no {tag} quantization; available: {', '.join(available_quants(choices))}"
    )


def available_quants(choices: list[GGUFChoice]) -> list[str]:
    seen = dict.fromkeys(c.quant or PurePosixPath(c.files[0]).name for c in choices)
    return list(seen)


def _rank(quant: str) -> int:
    try:
        return QUANT_PREFERENCE.index(quant)
    except ValueError:
        return len(QUANT_PREFERENCE)

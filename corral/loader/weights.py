"""Open a model from a path (a .gguf file or a Hugging Face folder) as one `ModelSource`."""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from corral.errors import ModelFileError
from corral.loader.config import ModelConfig
from corral.loader.expected_weights import expected_hf_names
from corral.loader.gguf_file import GGUFFile, is_gguf
from corral.loader.quantized import QuantizedWeight


@dataclass
class ModelSource:
    """A model's config and a way to stream its weights in HF names.

    `format` is "gguf" (then `gguf` is the open file) or "hf" (then `path` is the folder).
    """

    path: Path
    format: str
    config: ModelConfig
    gguf: GGUFFile | None = None
    files: list[Path] = field(default_factory=list)  # safetensors shards of an HF folder

    def iter_weights(self, keep_quantized: bool = False) -> Iterator[tuple[str, torch.Tensor | QuantizedWeight]]:
        """Yield (HF parameter name, weight) once per stored tensor.

        GGUF: float32 tensors, or with keep_quantized a QuantizedWeight for each quantized 2-D
        tensor; llama-arch Q/K rows are back in HF order (a QuantizedWeight's through its
        `row_order`). HF: tensors in their stored dtype. `lm_head.weight` is absent when the
        embeddings are tied.
        """
        if self.gguf is not None:
            from corral.loader.gguf_weights import iter_gguf_weights

            return iter_gguf_weights(self.gguf, self.config, keep_quantized)
        from corral.loader.family import family_for_config
        from corral.loader.safetensors_weights import iter_safetensors_weights

        family = family_for_config(self.config)
        if family is None:
            return iter_safetensors_weights(self.files)
        return ((renamed, w) for name, w in iter_safetensors_weights(self.files)
                if (renamed := family.hf_checkpoint_name(name)) is not None)


def load_model_source(path: str | Path) -> ModelSource:
    """Open `path` and check it holds every tensor its config needs; load no weights yet.

    Accepts a .gguf file, a folder with config.json and safetensors, a folder holding exactly one
    .gguf file, or the config.json of a folder. Raises ModelFileError (missing or malformed files,
    naming the file) or UnsupportedModelError (architecture or tensor type corral cannot run).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelFileError(p, "no such file or folder")
    if p.is_file() and p.name == "config.json":
        p = p.parent
    if p.is_dir():
        if (p / "config.json").is_file():
            return _open_hf(p)
        ggufs = sorted(p.glob("*.gguf"))
        if len(ggufs) == 1:
            return _open_gguf(ggufs[0])
        hint = "several .gguf files; pass one of them" if ggufs else "no config.json; pass a .gguf file or a Hugging Face model folder"
        raise ModelFileError(p, f"folder has {hint}")
    if is_gguf(p):
        return _open_gguf(p)
    raise ModelFileError(p, "not a GGUF file (wrong magic bytes) nor a Hugging Face model folder")


def _open_gguf(p: Path) -> ModelSource:
    from corral.loader.gguf_config import config_from_gguf
    from corral.loader.gguf_weights import check_gguf_tensors

    gf = GGUFFile(p)
    cfg = config_from_gguf(gf)
    check_gguf_tensors(gf, cfg)
    return ModelSource(path=p, format="gguf", config=cfg, gguf=gf)


def _open_hf(folder: Path) -> ModelSource:
    from corral.loader.family import family_for_config
    from corral.loader.hf_config import config_from_hf
    from corral.loader.safetensors_weights import safetensors_files, safetensors_names

    config_path = folder / "config.json"
    try:
        raw = json.loads(config_path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFileError(config_path, f"not valid JSON ({e})") from None
    try:
        cfg = config_from_hf(raw, config_path)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(config_path, f"missing or malformed field {e}; the config is incomplete") from None
    files = safetensors_files(folder)
    names = safetensors_names(files)
    family = family_for_config(cfg)
    if family is not None:
        names = {family.hf_checkpoint_name(n) for n in names} - {None}
    for name in expected_hf_names(cfg):
        if name not in names:
            raise ModelFileError(folder, f"tensor {name!r} is in no safetensors file; the download is incomplete")
    return ModelSource(path=folder, format="hf", config=cfg, files=files)

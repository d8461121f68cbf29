"""Open a model from a path (a .gguf file or a Hugging Face folder) as one `ModelSource`."""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from corral.errors import ModelFileError
from corral.loader.config import ModelConfig
from corral.loader.expected_weights import check_layer_count, check_shapes, expected_hf_names
from corral.loader.gguf_file import GGUFFile, is_gguf
from corral.loader.quantized import QuantizedWeight

MAX_CONFIG_BYTES = 4 << 20  # real config.json files are a few kilobytes


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

    def num_tensors(self) -> int:
        """Tensors stored in the file(s): what `iter_weights` yields, give or take the few a
        family drops or merges (for load progress, not for checks)."""
        if self.gguf is not None:
            return len(self.gguf.tensors)
        from corral.loader.safetensors_weights import count_safetensors_tensors

        return count_safetensors_tensors(self.files)

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
    from corral.loader.safetensors_weights import safetensors_files, safetensors_shapes

    config_path = folder / "config.json"
    cfg = config_from_hf(read_config_json(config_path), config_path)
    files = safetensors_files(folder)
    shapes = safetensors_shapes(files)
    check_layer_count(cfg, len(shapes), folder)
    family = family_for_config(cfg)
    if family is not None:  # checkpoint names the family maps (None: a tensor the model does not use)
        shapes = {hf: shape for name, shape in shapes.items() if (hf := family.hf_checkpoint_name(name)) is not None}
    for name in expected_hf_names(cfg):
        if name not in shapes:
            raise ModelFileError(folder, f"tensor {name!r} is in no safetensors file; the download is incomplete")
    check_shapes(cfg, shapes, folder)
    return ModelSource(path=folder, format="hf", config=cfg, files=files)


def read_config_json(path: Path) -> object:
    """The parsed JSON of a config.json (any JSON value; config_from_hf checks it is an object).
    Raises ModelFileError for a file that is unreadable, too large or not JSON."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ModelFileError(path, f"is larger than {MAX_CONFIG_BYTES >> 20} MiB; it is not a model configuration")
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ModelFileError(path, f"cannot be read ({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise ModelFileError(path, f"not valid JSON ({str(e)[:200] or type(e).__name__})") from None

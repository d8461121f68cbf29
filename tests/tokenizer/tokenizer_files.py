"""Helpers for tokenizer tests: vocab-only GGUF files and tokenizer folders with another chat template."""
from __future__ import annotations

import json
import shutil
from pathlib import Path


def write_vocab_gguf(hf_dir: Path, path: Path) -> Path:
    """A GGUF file holding only the tokenizer of `hf_dir`, written by corral's exporter."""
    import gguf

    from corral.tokenizer.gguf_vocab import add_tokenizer_to_gguf

    writer = gguf.GGUFWriter(path, "llama")
    add_tokenizer_to_gguf(writer, hf_dir)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def with_chat_template(src: Path, dst: Path, template) -> Path:
    """A copy of tokenizer folder `src` whose tokenizer_config.json has `template` (None: none)."""
    shutil.copytree(src, dst)
    config_path = dst / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if template is None:
        config.pop("chat_template", None)
    else:
        config["chat_template"] = template
    config_path.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return dst

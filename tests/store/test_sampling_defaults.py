"""The sampling a model's files recommend: generation_config.json, GGUF general.sampling.*, and a
Modelfile's PARAMETERs over them (corral.store.sampling_defaults through resolve)."""
from __future__ import annotations

import json

from corral.store import create, resolve
from corral.store.sampling_defaults import file_options


def test_hf_folder_generation_config_gives_defaults_and_the_modelfile_overrides(tiny_models, tmp_path, monkeypatch):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_models("qwen2", "hf"), folder)
    (folder / "generation_config.json").write_text(json.dumps(
        {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "repetition_penalty": 1.05, "do_sample": True,
         "min_p": "bad"}))
    expected = {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "repeat_penalty": 1.05}
    assert file_options(folder, "hf") == expected
    assert resolve(folder).params == expected
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "home"))
    create("tuned", f"FROM {folder}\nPARAMETER temperature 0.1\n")
    assert resolve("tuned").params == {**expected, "temperature": 0.1}


def test_gguf_sampling_metadata_gives_defaults(tmp_path):
    import gguf
    import numpy as np

    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_float32("general.sampling.temp", 0.5)
    writer.add_int32("general.sampling.top_k", 40)
    writer.add_float32("general.sampling.top_p", 7.0)  # out of range: left out
    writer.add_tensor("x", np.zeros(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert file_options(path, "gguf") == {"temperature": 0.5, "top_k": 40}
    assert file_options(tmp_path / "missing.gguf", "gguf") == {}

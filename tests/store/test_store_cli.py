"""`corral pull | list | show | rm | cp | create` against a temporary store and the fake Hub."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from conftest import GGUF_REPO
from corral.cli.main import main
from corral.cli.store_commands import ago, human_size, table


def test_pull_list_show_cp_rm(home, hub, capsys):
    assert main(["pull", f"hf.co/{GGUF_REPO}:Q8_0"]) == 0
    err = capsys.readouterr().err
    assert "pulling manifest" in err and "100%" in err and "success" in err

    assert main(["cp", f"hf.co/{GGUF_REPO}:Q8_0", "tiny"]) == 0
    assert "copied" in capsys.readouterr().out

    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    stored = [line for line in lines[1:] if line.split()[1] != "bundled"]  # bundled models list too
    assert {line.split()[0] for line in stored} == {f"hf.co/{GGUF_REPO}:Q8_0", "tiny:latest"}
    assert len({line.split()[1] for line in stored}) == 1  # same manifest digest

    assert main(["show", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "architecture        llama" in out and "context length" in out and "quantization" in out

    assert main(["show", "tiny", "--template"]) == 0
    assert capsys.readouterr().out.strip() == "{{ messages }}"

    assert main(["show", "tiny", "--modelfile"]) == 0
    assert "FROM " in capsys.readouterr().out

    assert main(["rm", "tiny", f"hf.co/{GGUF_REPO}:Q8_0"]) == 0
    assert capsys.readouterr().out.count("deleted") == 2
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    assert all(line.split()[1] == "bundled" for line in lines[1:])  # only what the install brings is left


def test_create_with_modelfile(home, tmp_path, gguf_files, capsys):
    (tmp_path / "tiny.gguf").write_bytes(gguf_files["F16"])
    (tmp_path / "Modelfile").write_text('FROM ./tiny.gguf\nPARAMETER stop "<|end|>"\nSYSTEM """Be kind."""\n')
    assert main(["create", "kind", "-f", str(tmp_path / "Modelfile")]) == 0
    assert "success" in capsys.readouterr().err
    assert main(["show", "kind", "--parameters"]) == 0
    assert capsys.readouterr().out.split() == ["stop", '"<|end|>"']
    assert main(["show", "kind", "--system"]) == 0
    assert capsys.readouterr().out.strip() == "Be kind."


def test_errors_print_a_message_and_return_1(home, hub, capsys):
    assert main(["show", "nope"]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["pull", f"hf.co/{GGUF_REPO}:Q3_K_S"]) == 1
    assert "available: Q4_K_M, Q8_0, F16" in capsys.readouterr().err
    assert main(["create", "x", "-f", "/no/such/Modelfile"]) == 1
    assert "cannot read Modelfile" in capsys.readouterr().err


def test_formatting_helpers():
    assert human_size(397_000_000) == "397 MB" and human_size(4_700_000_000) == "4.7 GB" and human_size(12) == "12 B"
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert ago(now - timedelta(minutes=2), now) == "2 minutes ago"
    assert ago(now - timedelta(days=1), now) == "1 day ago"
    assert table([["A", "B"], ["long", "x"]]) == "A       B\nlong    x"

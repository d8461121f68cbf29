"""`corral run MODEL PROMPT` prints the model's answer, in-process or through a running server,
with the Modelfile's SYSTEM, MESSAGE turns and PARAMETERs applied (checked against `LLM.chat`)."""
from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from cli_harness import cli_env, free_port, greedy_reply

SYSTEM = "You are a terse assistant."
PRESET = [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "A tiny model."}]


def _expected(llm, prompt: str, **kw) -> str:
    return greedy_reply(llm, [{"role": "system", "content": SYSTEM}, *PRESET, {"role": "user", "content": prompt}], **kw)


def test_one_shot_in_process_uses_the_modelfile(cli_store, closed_host, reference_llm, monkeypatch, capsys):
    from corral.cli.main import main

    monkeypatch.setenv("CORRAL_HOME", str(cli_store))
    monkeypatch.setenv("CORRAL_HOST", closed_host)
    assert main(["run", "mymodel", "hi", "there"]) == 0
    out = capsys.readouterr().out
    expected = _expected(reference_llm, "hi there")
    assert out == expected + "\n"
    assert out != greedy_reply(reference_llm, [{"role": "user", "content": "hi there"}]) + "\n"


def test_one_shot_applies_a_modelfile_stop(cli_store, closed_host, reference_llm, tiny_gguf, monkeypatch, capsys):
    from corral import store
    from corral.cli.main import main

    full = greedy_reply(reference_llm, [{"role": "user", "content": "hi"}], max_tokens=8)
    stop = next((full[i:i + 2] for i in range(1, len(full) - 1) if full[i:i + 2].strip()), None)
    if stop is None:
        pytest.skip("the greedy reply has no visible text to stop at")
    modelfile = f'FROM {tiny_gguf}\nPARAMETER temperature 0\nPARAMETER num_predict 8\nPARAMETER stop "{stop}"\n'
    store.create("stopper", modelfile, home=cli_store)
    monkeypatch.setenv("CORRAL_HOME", str(cli_store))
    monkeypatch.setenv("CORRAL_HOST", closed_host)
    assert main(["run", "stopper", "hi"]) == 0
    out = capsys.readouterr().out
    expected = greedy_reply(reference_llm, [{"role": "user", "content": "hi"}], max_tokens=8, stop=[stop])
    assert out == expected + "\n" and len(expected) < len(full)


def test_unknown_model_is_an_error_message(cli_store, closed_host, monkeypatch, capsys):
    from corral.cli.main import main

    monkeypatch.setenv("CORRAL_HOME", str(cli_store))
    monkeypatch.setenv("CORRAL_HOST", closed_host)
    assert main(["run", "no-such-model", "hi"]) == 1
    assert "no-such-model" in capsys.readouterr().err


@pytest.fixture
def serve_process(cli_store):
    """`corral serve` in a child process on a free port over the CLI store."""
    host = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "corral.cli.main", "serve", "--max-model-len", "1024",
                             "--log-level", "warning"], env=cli_env(cli_store, host),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://{host}/api/version", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("corral serve did not start: " + proc.communicate()[0].decode(errors="replace"))
        time.sleep(0.1)
    yield host
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_one_shot_through_a_running_server(serve_process, cli_store, reference_llm):
    env = cli_env(cli_store, serve_process)
    done = subprocess.run([sys.executable, "-m", "corral.cli.main", "run", "mymodel", "hi"], env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stdout == _expected(reference_llm, "hi") + "\n"
    loaded = httpx.get(f"http://{serve_process}/api/ps").json()["models"]
    # it ran on the server, not in the child (`corral serve` with no model also loaded the default)
    assert "mymodel" in [m["name"] for m in loaded]

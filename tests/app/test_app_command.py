"""`corral app`: uses the server at CORRAL_HOST when one answers, else starts one and stops it on Ctrl+C."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
from server_harness import free_port


def _env(home, host: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env.update(CORRAL_HOME=str(home), CORRAL_HOST=host, PYTHONUNBUFFERED="1")
    return env


def test_opens_the_browser_on_a_running_server(app_server, tmp_path):
    opened = tmp_path / "opened"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    env = {**_env(tmp_path, app_server.removeprefix("http://")), "BROWSER": f"{browser} %s"}
    result = subprocess.run([sys.executable, "-m", "corral.cli.main", "app"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"{app_server}/" in result.stdout
    assert opened.read_text().strip() == f"{app_server}/"


def test_starts_a_server_and_stops_it_on_ctrl_c(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    child = subprocess.Popen([sys.executable, "-m", "corral.cli.main", "app", "--no-browser"],
                             env=_env(tmp_path, url.removeprefix("http://")), stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == f"corral app: {url}/"
        page = httpx.get(url + "/", headers={"Accept": "text/html"})
        assert "/app/static/app.js" in page.text
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=60) == 0
        try:
            httpx.get(url + "/health", timeout=1)
            raise AssertionError("the server outlived `corral app`")
        except httpx.HTTPError:
            pass
    finally:
        if child.poll() is None:
            child.kill()

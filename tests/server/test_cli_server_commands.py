"""`corral ps` and `corral stop` talk to a real server; `serve` parses its host the Ollama way."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from corral.cli.main import main
from corral.cli.serve import split_host
from corral.cli.server_commands import format_size, format_until
from corral.errors import ValidationError


@pytest.mark.parametrize("value,expected", [
    ("127.0.0.1:11435", ("127.0.0.1", 11435)), ("0.0.0.0", ("0.0.0.0", 11435)),
    ("http://localhost:8000/", ("localhost", 8000)), ("[::1]:9000", ("::1", 9000)), (":7000", ("127.0.0.1", 7000)),
])
def test_split_host(value, expected):
    assert split_host(value) == expected


def test_split_host_rejects_a_bad_port():
    with pytest.raises(ValidationError):
        split_host("localhost:http")


def test_formatting():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert format_until((now + timedelta(minutes=4, seconds=30)).isoformat(), now) == "4 minutes from now"
    assert format_until("2318-11-26T00:00:00Z", now) == "Forever"
    assert format_size(1_500_000) == "1.5 MB"


def test_ps_lists_loaded_models_of_a_running_server(server, monkeypatch, capsys):
    monkeypatch.setenv("CORRAL_HOST", server.url)
    assert main(["ps"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["NAME", "SIZE", "PROCESSOR"] and out[1].startswith(server.model)


def test_stop_unloads_through_the_api(keyed_server, monkeypatch, capsys):
    monkeypatch.setenv("CORRAL_HOST", keyed_server.url.removeprefix("http://"))
    monkeypatch.setenv("CORRAL_API_KEY", "test-key")
    import httpx

    manager = keyed_server.state.manager
    loaded = httpx.post(keyed_server.url + "/api/generate", json={"model": keyed_server.model},
                        headers={"Authorization": "Bearer test-key"}, timeout=120)
    assert loaded.json()["done_reason"] == "load" and len(manager.loaded()) == 1
    assert main(["stop", keyed_server.model]) == 0
    assert manager.loaded() == []
    assert main(["stop", "no-such-model"]) == 1 and "not found" in capsys.readouterr().err
    monkeypatch.setenv("CORRAL_API_KEY", "wrong")
    assert main(["ps"]) == 1 and "API key" in capsys.readouterr().err
    assert manager.loaded() == []

"""The app's Hub routes over plain HTTP: GGUF repos first, a repo's choices with sizes, fit and
the name to pull, and unknown repos as 404s."""
from __future__ import annotations

import httpx
from app_harness import FOLDER_REPO, GGUF_REPO, HUGE_REPO, MEMORY_BUDGET, unload_all


def test_search_lists_gguf_repos_first(app_server):
    repos = httpx.get(f"{app_server}/app/api/hub/search", params={"q": "acme"}, timeout=30).json()["repos"]
    flags = [r["gguf"] for r in repos]
    assert FOLDER_REPO in [r["id"] for r in repos] and GGUF_REPO in [r["id"] for r in repos]
    assert flags == sorted(flags, reverse=True)  # every GGUF repo before any other


def test_repo_choices_and_fit(app_server):
    unload_all(app_server)
    tiny = httpx.get(f"{app_server}/app/api/hub/repo", params={"repo": GGUF_REPO}, timeout=30).json()
    (choice,) = tiny["gguf"]
    assert choice["quant"] == "F16" and choice["pull"] == f"hf.co/{GGUF_REPO}:F16" and choice["size"] > 0
    assert choice["fit"]["fit"] == "fits" and tiny["folder"] is None
    huge = httpx.get(f"{app_server}/app/api/hub/repo", params={"repo": HUGE_REPO}, timeout=30).json()
    assert huge["gguf"][0]["fit"]["fit"] == "too big" and huge["gguf"][0]["fit"]["free"] <= MEMORY_BUDGET
    folder = httpx.get(f"{app_server}/app/api/hub/repo", params={"repo": FOLDER_REPO}, timeout=30).json()
    assert folder["gguf"] == [] and folder["folder"]["pull"] == FOLDER_REPO and folder["folder"]["size"] == 4096


def test_unknown_repo_is_a_404_with_a_reason(app_server):
    r = httpx.get(f"{app_server}/app/api/hub/repo", params={"repo": "acme/nothing"}, timeout=30)
    assert r.status_code == 404 and "not found" in r.json()["error"]

"""Hashes and commit ids a Hub (or a hostile HF_ENDPOINT mirror) sends name files in the store:
anything but hex of the right length is refused before a file is named by it; sizes that are not
byte counts are refused too. Each is a StoreError (a 4xx/5xx on the server), never a crash."""
from __future__ import annotations

import pytest

from conftest import GGUF_REPO, HF_REPO, snapshot
from corral.errors import StoreError
from corral.store import list_models, pull

ESCAPE = "../../../../escaped"


@pytest.mark.parametrize("repo, path, fields, name", [
    (GGUF_REPO, "tiny-q8_0.gguf", {"lfs": {"size": 1, "sha256": ESCAPE, "pointerSize": 134}}, f"hf.co/{GGUF_REPO}:Q8_0"),
    (GGUF_REPO, "tiny-q8_0.gguf", {"lfs": {"size": 1, "sha256": "ab" * 31, "pointerSize": 134}}, f"hf.co/{GGUF_REPO}:Q8_0"),
    (HF_REPO, "config.json", {"blobId": ESCAPE}, HF_REPO),
    (HF_REPO, "config.json", {"blobId": "g" * 40}, HF_REPO),
    (HF_REPO, None, {"commit": "../../../x"}, HF_REPO),
    (HF_REPO, "config.json", {"size": -5}, HF_REPO),
    (GGUF_REPO, "tiny-q8_0.gguf", {"lfs": {"size": "huge", "sha256": "ab" * 32, "pointerSize": 134}},
     f"hf.co/{GGUF_REPO}:Q8_0"),
])
def test_hostile_hashes_are_refused_and_change_nothing(home, hub, tmp_path, repo, path, fields, name):
    if path is None:
        hub.repos[repo].commit = fields["commit"]
    else:
        hub.repos[repo].tamper[path] = fields
    before = snapshot(tmp_path)
    with pytest.raises(StoreError, match="invalid|cannot read"):
        pull(name)
    assert list_models() == []
    after = snapshot(tmp_path)
    assert not any("escaped" in p or "/x" in p for p in after)
    assert not any(p.startswith("corral-home/blobs/") for p in after)
    assert {p for p in after if not p.startswith("corral-home/")} == {p for p in before if not p.startswith("corral-home/")}

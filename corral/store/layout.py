"""Where things live under the store root (`CORRAL_HOME`, default ~/.corral).

```
blobs/sha256-<hex>                     content-addressed files (mode 0644), never changed once written
manifests/<host>/<namespace>/<repo>/<tag>   JSON saying what a name points to
partial/sha256-<hex>-partial           downloads in progress (kept so a cut download resumes)
folders/<id>/<filename> -> blob        multi-file models as folders of links to blobs
tmp/                                   scratch files, renamed into place when complete
```
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from corral import envs


@dataclass(frozen=True)
class StoreLayout:
    root: Path

    @classmethod
    def at(cls, home: str | Path | None = None) -> "StoreLayout":
        """The layout rooted at `home`, or at `CORRAL_HOME` read now when None."""
        return cls(Path(home).expanduser() if home is not None else envs.corral_home())

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def partial(self) -> Path:
        return self.root / "partial"

    @property
    def folders(self) -> Path:
        return self.root / "folders"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def blob_path(self, digest: str) -> Path:
        """`sha256:<hex>` -> blobs/sha256-<hex>."""
        return self.blobs / digest.replace(":", "-")

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    def lock_path(self, digest: str) -> Path:
        """Lock file that serializes downloads of one file while they run."""
        return self.locks / (digest.replace(":", "-") + ".lock")

    def partial_path(self, digest: str) -> Path:
        return self.partial / (digest.replace(":", "-") + "-partial")

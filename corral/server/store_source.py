"""The store as the server's ModelSource: store names (with their Modelfile defaults) and paths."""
from __future__ import annotations

from pathlib import Path

from corral import store
from corral.errors import StoreError
from corral.server.generate_request import ModelDefaults
from corral.server.model_source import PathsNotAllowedError, ResolvedModel, weights_size
from corral.store.layout import StoreLayout
from corral.store.resolve import as_path


class StoreModelSource:
    """Store names resolve to their manifest's files, keyed by canonical name (two names for the
    same blobs may carry different defaults); paths are keyed by their absolute path. With
    `allow_paths` False a path is refused (PathsNotAllowedError) unless it is one of
    `operator_paths` (the models named on `corral serve`)."""

    def __init__(self, home: str | Path | None = None, *, allow_paths: bool = True,
                 operator_paths: tuple[str, ...] | list[str] = ()):
        self.home = home
        self.allow_paths = allow_paths
        self.operator_paths = frozenset(operator_paths)

    def check_path_allowed(self, name: str) -> None:
        """PathsNotAllowedError if `name` is a filesystem path this source must not open."""
        if not self.allow_paths and name not in self.operator_paths and as_path(name) is not None:
            raise PathsNotAllowedError(name)

    def resolve(self, name: str) -> ResolvedModel:
        self.check_path_allowed(name)
        found = store.resolve(name, home=self.home)
        path = Path(found.path).resolve()
        root = StoreLayout.at(self.home).root.resolve()
        canonical = _canonical(name) if path.is_relative_to(root) else None
        key = canonical or str(path)
        entry = self._entry(canonical) if canonical else None
        modified = entry.modified_at.timestamp() if entry else path.stat().st_mtime
        return ResolvedModel(
            name=name,
            key=key,
            path=path,
            kind=found.kind,
            size_bytes=entry.size if entry else weights_size(path),
            modified_at=modified,
            defaults=ModelDefaults(options=dict(found.params), system=found.system,
                                   messages=tuple(dict(m) for m in found.messages)),
            template=found.template,
            digest=entry.digest.removeprefix("sha256:") if entry else "",
            details=dict(entry.details) if entry else {},
        )

    def list(self) -> list[ResolvedModel]:
        models = []
        for entry in store.list_models(home=self.home):
            try:
                models.append(self.resolve(entry.name))
            except StoreError:  # a damaged model: `damaged()` lists it
                continue
        return models

    def damaged(self) -> list[store.ModelEntry]:
        """Store models that cannot be used as they are (`ModelEntry.damage` says why)."""
        return [e for e in store.list_models(home=self.home) if e.damage]

    def _entry(self, canonical: str) -> store.ModelEntry | None:
        return next((e for e in store.list_models(home=self.home) if e.name == canonical), None)


def _canonical(name: str) -> str | None:
    try:
        return str(store.parse_name(name))
    except StoreError:
        return None

"""Kustomizations Flux builds. Flux's kustomize-controller builds the directory a Flux
`Kustomization` names (`spec.path`, from its source's root) without kustomize's load restrictions,
so the kustomizations it builds may list files outside their own directory, which `kustomize
build` and `kubectl apply -k` refuse. Where the path has no kustomization file, Flux generates one
that lists each directory below it holding one (not descending further), and every YAML file on
the way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path

import yaml

from serving_conformance.base import yamlsafe
from serving_conformance.manifests import files, kustomize

GROUP = "kustomize.toolkit.fluxcd.io"


class FluxPaths:
    """The directories the repository's Flux Kustomizations build, read only when first asked."""

    def __init__(self, found: Iterable[Path], root: Path) -> None:
        self._found = list(found)
        self._base = files.repository_top(root.resolve()) or root.resolve()

    @cached_property
    def paths(self) -> frozenset[Path]:
        paths = set()
        for path in self._found:
            for data in _documents(path):
                if data.get("kind") == "Kustomization" and str(data.get("apiVersion", "")).startswith(f"{GROUP}/"):
                    spec = data.get("spec") if isinstance(data.get("spec"), Mapping) else {}
                    # Relative to the source's root, as Flux joins it (a leading "/" included).
                    target = files.real_path(self._base / str(spec.get("path") or ".").lstrip("/"))
                    if isinstance(target, Path) and files.within(target, (self._base,)):
                        paths.add(target)
        return frozenset(paths)

    def builds(self, directory: Path) -> bool:
        """Flux builds the kustomization in `directory`: a Flux path, or below one with no
        kustomization file on the way up (Flux's generated kustomization then lists it)."""
        if not self._found:
            return False
        directory = directory.resolve()
        if directory in self.paths:
            return True
        for parent in directory.parents:
            if kustomize.kustomization_file(parent) is not None:
                return False
            if parent in self.paths:
                return True
        return False


def _documents(path: Path) -> list[Mapping]:
    """The mappings of a file that names Flux's kustomize group; nothing from any other file."""
    try:
        text = files.read_text(path)
    except ValueError:
        return []
    if GROUP not in text:
        return []
    try:
        return [data for _, data in yamlsafe.parse_documents(text) if isinstance(data, Mapping)]
    except yaml.YAMLError:
        return []  # the walker reports the file as it reads it

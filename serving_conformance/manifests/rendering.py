"""Kustomizations rendered as the platform's tools render them: each root through kustomize, its
inputs first through the bounded reader, each rendered object given the line it starts at in its
source; what cannot be rendered (remote resources, Helm charts) listed, and not judged.

A part of the loader's walker (load.py), kept apart so that each module has one job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from serving_conformance.base import yamlsafe
from serving_conformance.manifests import files, kustomize
from serving_conformance.manifests.flux import FluxPaths
from serving_conformance.manifests.model import LoadProblem, ManifestSet

YAML_SUFFIXES = (".yaml", ".yml")
_GATEWAY_API_URL = re.compile(r"kubernetes-sigs/gateway-api/releases/download/v(\d+\.\d+\.\d+)/(standard|experimental)-install")


def object_starts(path: Path) -> dict[tuple[Any, Any], int]:
    """The line each object of a file starts at, by (kind, name), read through the bounded reader."""
    found: dict[tuple[Any, Any], int] = {}
    for line, data in yamlsafe.parse_documents(files.read_text(path)):
        if isinstance(data, Mapping) and isinstance(data.get("metadata"), Mapping):
            found.setdefault((data.get("kind"), data["metadata"].get("name")), line)
    return found


class Rendering:
    """The walker's rendering: it provides `result`, `skip`, `add`, `read_documents`."""

    result: ManifestSet
    _renderer: list[str] | None | bool
    _starts: dict[Path, dict[tuple[Any, Any], int]]
    _vetted: dict[Path, str | None]
    real_roots: tuple[Path, ...]
    flux: FluxPaths

    def renderer(self) -> list[str] | None:
        if self._renderer is False:
            self._renderer = kustomize.find_renderer()
        return self._renderer or None

    def render_root(self, root: kustomize.Kustomization, tree: Mapping[Path, kustomize.Kustomization]) -> None:
        members = kustomize.closure(root, tree)
        remote = [(k.path, r) for k in members for r in k.remote]
        helm = [(k.path, h) for k in members for h in k.helm]
        for path, url in remote:
            self.skip(path, f"remote resource {url!r}: not fetched")
            self.note_pin(url)
        for path, chart in helm:
            self.skip(path, f"Helm chart {chart!r} (helmCharts): not rendered (that needs helm)")
        if remote or helm:
            self.read_unrendered(members, "it needs what is not fetched here")
            return
        if any(k.missing for k in members):
            return  # each missing entry is a problem already; kustomize would only repeat it
        if not self.vetted(members):
            return  # a file it reads goes past the bounds: kustomize never sees it
        renderer = self.renderer()
        if renderer is None:
            self.result.problems.append(LoadProblem(
                root.path, None, "cannot be rendered: no kustomize here (run `python -m serving_conformance.prepare`, "
                "or put kustomize or kubectl on PATH)"))
            return
        try:
            rendered = list(kustomize.render(root, renderer, unrestricted=self.built_by_flux(members)))
        except kustomize.RenderError as exc:
            self.result.problems.append(LoadProblem(root.path, None, f"kustomize cannot render it: {exc}"))
            return
        self.result.files.append(root.path)
        for source, document in rendered:
            self.add(source, self.line_of(source, document), document, via=root.path)

    def built_by_flux(self, members: list[kustomize.Kustomization]) -> bool:
        """Flux builds the root (members[0]) and everything it reads is inside the manifests
        directories: kustomize may then read across kustomizations' directories, as Flux's does."""
        inside = all(files.within(p, self.real_roots) for k in members for p in (*k.files, *k.dirs))
        return inside and self.flux.builds(members[0].directory)

    def vetted(self, members: list[kustomize.Kustomization]) -> bool:
        """Every YAML file these kustomizations read passes the same bounded reader as any manifest
        (size, aliases, depth) before kustomize reads it: an alias bomb two files away from the
        directory is one problem of its file, not kustomize growing until the kernel ends it."""
        ok = True
        for k in members:
            for path in k.files:
                if path.suffix not in YAML_SUFFIXES:
                    continue
                why = self.vet(path)
                if why is not None:
                    self.result.problems.append(LoadProblem(path, None, f"listed by {k.path}: {why}; not rendered"))
                    ok = False
        return ok

    def vet(self, path: Path) -> str | None:
        """Why this file goes past the bounds (None when it does not); each file is read once."""
        if path not in self._vetted:
            why = None
            try:
                self._starts[path] = object_starts(path)  # where its objects start, for the rendered ones
            except ValueError as exc:
                why = str(exc)
            except yamlsafe.YAMLLimitError as exc:
                why = f"goes past the suite's YAML bounds: {exc.problem}"
            except yaml.YAMLError:
                why = None  # not valid YAML: kustomize says so in its own words
            self._vetted[path] = why
        return self._vetted[path]

    def read_unrendered(self, members: list[kustomize.Kustomization], why: str) -> None:
        """A kustomization that cannot be rendered: its local resources are not judged either, since
        without its namespace, labels, patches and images they are not what it deploys (a
        selector its labels add would be missing, say); each is listed."""
        for k in members:
            self.skip(k.path, f"not rendered ({why}): its local resources are not judged (without its namespace, "
                              "labels, patches and images they are not what it deploys)")

    def line_of(self, source: Path, document: Mapping[str, Any]) -> int:
        """Where the object starts in its source file (1 when it cannot be told); each source is
        parsed once per run (a rendered release bundle has thousands of objects in one file)."""
        meta = document.get("metadata") if isinstance(document.get("metadata"), Mapping) else {}
        return self.starts(source).get((document.get("kind"), meta.get("name")), 1)

    def starts(self, source: Path) -> dict[tuple[Any, Any], int]:
        if source not in self._starts:
            try:
                self._starts[source] = object_starts(source)
            except (ValueError, yaml.YAMLError):
                self._starts[source] = {}
        return self._starts[source]

    def note_pin(self, url: str) -> None:
        match = _GATEWAY_API_URL.search(url)
        if match:
            self.result.pins["gateway-api"] = (match.group(1), match.group(2))

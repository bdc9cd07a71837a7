"""Find and load the manifests under test.

A manifests directory is walked recursively. A directory holding a kustomization is read the way
kustomize reads it (only its `resources`), every other directory contributes all of its YAML.
Multi-document files, `kind: List`, and Helm values files of KServe's `kserve-resources` chart
are understood. Nothing here raises on bad input: problems are collected with file and line so
that each becomes one failing test. Reading is bounded (base/limits.py): file sizes and counts,
directory depth, and YAML depth, aliases and expansion (base/yamlsafe.py); symlinks are followed
only while they stay inside the manifests directories (files.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from serving_conformance.base import yamlsafe
from serving_conformance.base.limits import (
    MAX_IDENT_CHARS,
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_FILES,
    MAX_TOTAL_MANIFEST_BYTES,
    MAX_WALK_DEPTH,
)
from serving_conformance.base.text import clip
from serving_conformance.manifests import files

YAML_SUFFIXES = (".yaml", ".yml")
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
HELM_VALUES_KIND = "HelmValues"

# Short names used in test ids, e.g. "kserve/qwen-cpu".
_KIND_ALIASES = {
    "InferenceService": "kserve",
    "Deployment": "deployment",
    "StatefulSet": "statefulset",
    "Service": "service",
    "ConfigMap": "configmap",
    "Secret": "secret",
    "Gateway": "gateway",
    "GatewayClass": "gatewayclass",
    "HTTPRoute": "httproute",
    "Namespace": "namespace",
    HELM_VALUES_KIND: "helm-values",
}


@dataclass(frozen=True)
class Resource:
    """One Kubernetes object (or Helm values document) and where it was written."""

    body: Mapping[str, Any]
    path: Path
    line: int
    pseudo_kind: str | None = None

    def __repr__(self) -> str:  # never the body: it can be megabytes (tracebacks, JUnit)
        return f"Resource({self.ident} at {self.where})"

    @property
    def kind(self) -> str:
        return self.pseudo_kind or str(self.body.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", ""))

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def metadata(self) -> Mapping[str, Any]:
        meta = self.body.get("metadata")
        return meta if isinstance(meta, Mapping) else {}

    @property
    def name(self) -> str:
        if self.pseudo_kind == HELM_VALUES_KIND:
            return self.path.stem
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str | None:
        namespace = self.metadata.get("namespace")
        return str(namespace) if namespace else None

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.body.get("spec")
        return spec if isinstance(spec, Mapping) else {}

    @property
    def ident(self) -> str:
        alias = _KIND_ALIASES.get(self.kind, self.kind.lower())
        return clip(f"{alias}/{self.name}", MAX_IDENT_CHARS)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class LoadProblem:
    path: Path
    line: int | None
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", clip(self.message))

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else str(self.path)


@dataclass
class ManifestSet:
    roots: tuple[Path, ...]
    files: list[Path] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    problems: list[LoadProblem] = field(default_factory=list)
    # Documents that are YAML but not objects the suite knows, with the reason.
    ignored: list[LoadProblem] = field(default_factory=list)
    _by_kind: dict[str, list[Resource]] = field(default_factory=dict, repr=False, compare=False)
    _index_size: int = field(default=-1, repr=False, compare=False)

    def __repr__(self) -> str:
        return (f"ManifestSet({', '.join(map(str, self.roots))}: {len(self.files)} files, "
                f"{len(self.resources)} resources, {len(self.problems)} problems)")

    def of_kind(self, *kinds: str) -> list[Resource]:
        # Rules ask this once per resource they judge: index by kind instead of scanning.
        if self._index_size != len(self.resources):
            self._by_kind = {}
            for resource in self.resources:
                self._by_kind.setdefault(resource.kind, []).append(resource)
            self._index_size = len(self.resources)
        return [r for kind in kinds for r in self._by_kind.get(kind, [])]

    def find(self, kind: str, name: str, namespace: str | None = None) -> Resource | None:
        """The object of this kind and name (in `namespace`, when one is given and it declares one)."""
        return next((r for r in self.resources if r.kind == kind and r.name == name
                     and (namespace is None or r.namespace in (None, namespace))), None)

    @property
    def root(self) -> Path:
        return self.roots[0]

    def relative(self, path: Path) -> str:
        """`path` relative to the root it lies under (for test ids and messages)."""
        for root in self.roots:
            try:
                return str(path.relative_to(root)) or path.name
            except ValueError:
                continue
        return str(path)


def load_manifests(roots: Path | Sequence[Path]) -> ManifestSet:
    """Load everything under each root (a directory or a single file)."""
    roots = (roots,) if isinstance(roots, Path) else tuple(roots)
    loader = _Walker(ManifestSet(roots=roots))
    for root in roots:
        before = len(loader.result.files)
        inspected = files.inspect(root, ())
        if inspected.kind == "problem":
            loader.problem(root, None, inspected.message)
        elif inspected.kind == "file":
            loader.load_file(root)
        else:
            loader.walk(root)
            if len(loader.result.files) == before and not any(p.path == root for p in loader.result.problems):
                loader.problem(root, None, "holds no YAML manifests (*.yaml, *.yml)")
    return loader.result


def parse_documents(text: str) -> Iterator[tuple[int, Any]]:
    """Yield (1-based line, data) for each document; raises yaml.YAMLError with a mark, also for
    a document past the bounds (yamlsafe.YAMLLimitError)."""
    return yamlsafe.parse_documents(text)


def is_kserve_helm_values(data: Any) -> bool:
    """Values of the kserve-resources chart: a top-level `kserve` mapping, no `kind`."""
    if not isinstance(data, Mapping) or "kind" in data or "apiVersion" in data:
        return False
    kserve = data.get("kserve")
    return isinstance(kserve, Mapping) and bool({"controller", "storage"} & set(kserve))


class _Walker:
    def __init__(self, result: ManifestSet) -> None:
        self.result = result
        self.seen: set[Path] = set()
        self.walked: set[Path] = set()  # real paths of the directories walked so far
        self.real_roots = tuple(r for r in (files.real_path(root) for root in result.roots) if isinstance(r, Path))
        self.depth = 0
        self.bytes_read = 0
        self.full = False  # a limit on the whole walk was reached: read nothing more

    def problem(self, path: Path, line: int | None, message: str) -> None:
        self.result.problems.append(LoadProblem(path, line, message))

    def walk(self, directory: Path) -> None:
        real = directory.resolve()
        if real in self.walked or self.full:
            return  # reached again through a symlink: its files are read once
        if self.depth >= MAX_WALK_DEPTH:
            self.problem(directory, None, f"is more than {MAX_WALK_DEPTH} directories deep: not walked")
            return
        try:
            entries = sorted(directory.iterdir())
        except OSError as exc:
            self.problem(directory, None, f"unreadable: {exc.strerror or exc}")
            return
        self.walked.add(real)
        self.depth += 1
        try:
            self.walk_entries(directory, real, entries)
        finally:
            self.depth -= 1

    def walk_entries(self, directory: Path, real: Path, entries: list[Path]) -> None:
        names = {entry.name: entry for entry in entries}
        kustomization = next((names[n] for n in KUSTOMIZATION_NAMES if n in names
                              and files.inspect(names[n], self.real_roots).kind == "file"), None)
        if kustomization is not None:
            self.follow_kustomization(kustomization)
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            inspected = files.inspect(entry, self.real_roots)
            wanted = entry.suffix in YAML_SUFFIXES
            if inspected.kind == "dir" and inspected.real is not None:
                if inspected.real == real or inspected.real in real.parents:
                    self.problem(entry, None, f"is a symlink loop (back to {inspected.real}): not followed")
                else:
                    self.walk(entry)
            elif inspected.kind == "file":
                if wanted:
                    self.load_file(entry)
            elif inspected.kind == "outside":  # said only of what would have been read
                if wanted or os.path.isdir(entry):
                    self.problem(entry, None, inspected.message)
            elif wanted or inspected.message == files.LOOP:
                self.problem(entry, None, inspected.message)

    def follow_kustomization(self, path: Path) -> None:
        documents = self.read_documents(path)
        if documents is None:
            return
        spec = documents[0][1] if documents else None
        if not isinstance(spec, Mapping):
            self.result.problems.append(LoadProblem(path, 1, "is not a kustomization mapping"))
            return
        entries = list(spec.get("resources") or []) + list(spec.get("bases") or [])
        for entry in entries:
            text = str(entry)
            if "://" in text or text.startswith(("github.com/", "git@")):
                self.result.ignored.append(
                    LoadProblem(path, None, f"remote resource {text!r} is not followed")
                )
                continue
            inspected = files.inspect(path.parent / text, ())
            if inspected.kind == "dir" and inspected.real is not None:
                self.walk(inspected.real)
            elif inspected.kind == "file" and inspected.real is not None:
                self.load_file(inspected.real)
            elif inspected.message == "does not exist":
                self.problem(path, None, f"lists resource {text!r}, which does not exist")
            else:
                self.problem(path, None, f"lists resource {text!r}, which {inspected.message}")

    def read_documents(self, path: Path) -> list[tuple[int, Any]] | None:
        resolved = files.real_path(path)
        if isinstance(resolved, str):
            self.problem(path, None, resolved)
            return None
        if resolved in self.seen or self.full:
            return None
        self.seen.add(resolved)
        if len(self.result.files) >= MAX_MANIFEST_FILES or self.bytes_read >= MAX_TOTAL_MANIFEST_BYTES:
            self.full = True
            self.problem(path, None, f"not read: the manifests hold more than {MAX_MANIFEST_FILES:,} YAML files or "
                         f"{MAX_TOTAL_MANIFEST_BYTES:,} bytes; point --manifests-dir at the serving manifests only")
            return None
        self.result.files.append(path)
        try:
            text = files.read_text(path, min(MAX_MANIFEST_BYTES, MAX_TOTAL_MANIFEST_BYTES - self.bytes_read))
        except ValueError as exc:
            self.problem(path, None, str(exc))
            return None
        self.bytes_read += len(text)
        try:
            return list(parse_documents(text))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(exc, "problem", None) or str(exc)
            what = "goes past the suite's YAML bounds" if isinstance(exc, yamlsafe.YAMLLimitError) else "is not valid YAML"
            self.problem(path, line, f"{what}: {problem}")
            return None

    def load_file(self, path: Path) -> None:
        documents = self.read_documents(path)
        for line, data in documents or []:
            self.add(path, line, data)

    def add(self, path: Path, line: int, data: Any) -> None:
        if data is None:
            return
        if is_kserve_helm_values(data):
            self.result.resources.append(Resource(data, path, line, HELM_VALUES_KIND))
            return
        if not isinstance(data, Mapping) or "kind" not in data or "apiVersion" not in data:
            self.result.ignored.append(
                LoadProblem(path, line, "not a Kubernetes object (no kind/apiVersion)")
            )
            return
        if data["kind"] == "List":
            for item in data.get("items") or []:
                self.add(path, line, item)
            return
        if not isinstance(data.get("metadata"), Mapping) or not data["metadata"].get("name"):
            self.result.problems.append(LoadProblem(path, line, f"{data['kind']} has no metadata.name"))
            return
        self.result.resources.append(Resource(data, path, line))

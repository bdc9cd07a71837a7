"""Find and load the manifests under test, the way a platform's GitOps tools would.

A manifests directory is scanned first: kustomizations are rendered by kustomize (roots only, see
kustomize.py), the files they consume are not read as objects of their own, and every other YAML
file contributes its documents (multi-document files, `kind: List`, Helm values of KServe's
`kserve-resources` chart). What is not followed is listed with the reason: remote resources,
Helm charts and templates, other charts' values, non-object documents, JSON files, Argo CD
pointers. Nothing here raises on bad input: problems are collected with file and line so that each
becomes one failing test. Reading is bounded (base/limits.py): file sizes and counts, directory
depth, and YAML depth, aliases and expansion (base/yamlsafe.py); symlinks are followed only while
they stay inside the manifests directories (files.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from serving_conformance.base import yamlsafe
from serving_conformance.base.limits import (
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_FILES,
    MAX_TOTAL_MANIFEST_BYTES,
    MAX_WALK_DEPTH,
)
from serving_conformance.manifests import files, kustomize, options_file
from serving_conformance.manifests.documents import (
    HELM_EXPRESSION,
    is_kserve_helm_values,
    is_values_file,
    templated_name,
)
from serving_conformance.manifests.flux import FluxPaths
from serving_conformance.manifests.model import HELM_VALUES_KIND, LoadProblem, ManifestSet, Resource
from serving_conformance.manifests.rendering import YAML_SUFFIXES, Rendering

KUSTOMIZATION_NAMES = kustomize.KUSTOMIZATION_NAMES
# kustomize's own kinds (Kustomization, Component, its builtin transformer configs): kustomize's
# input, whatever the file is called, never objects an API server would hold.
KUSTOMIZE_GROUPS = ("kustomize.config.k8s.io", "builtin")
# Kinds that point at manifests elsewhere (Argo CD): read, listed, not followed.
POINTER_KINDS = {"Application": "argoproj.io", "ApplicationSet": "argoproj.io", "AppProject": "argoproj.io"}

__all__ = ["HELM_VALUES_KIND", "LoadProblem", "ManifestSet", "Resource", "load_manifests", "parse_documents"]


def load_manifests(roots: Path | Sequence[Path], exclude: Sequence[Path] = ()) -> ManifestSet:
    """Load everything under each root (a directory or a single file); `exclude`: the suite's own
    outputs (its report, its artifacts), never read as manifests."""
    roots = (roots,) if isinstance(roots, Path) else tuple(roots)
    walker = _Walker(ManifestSet(roots=roots))
    walker.excluded = {p.resolve() for p in exclude}
    for root in roots:
        before = len(walker.result.files)
        inspected = files.inspect(root, ())
        if inspected.kind == "problem":
            walker.result.problems.append(LoadProblem(root, None, inspected.message))
        elif inspected.kind == "file":
            walker.load_file(root)
        else:
            skipped = len(walker.result.not_followed)
            walker.load_tree(root)
            # Only what it holds not followed (a Helm chart, JSON): listed there, not a problem.
            if len(walker.result.files) == before and len(walker.result.not_followed) == skipped \
                    and not any(p.path == root for p in walker.result.problems):
                walker.result.problems.append(LoadProblem(root, None, "holds no YAML manifests (*.yaml, *.yml)"))
    walker.note_duplicates()
    return walker.result


def parse_documents(text: str) -> Iterator[tuple[int, Any]]:
    """Yield (1-based line, data) for each document; raises yaml.YAMLError with a mark, also for
    a document past the bounds (yamlsafe.YAMLLimitError)."""
    return yamlsafe.parse_documents(text)


def _owning_kustomization(path: Path, tree: Mapping[Path, kustomize.Kustomization],
                          top: Path) -> kustomize.Kustomization | None:
    """The nearest kustomization at or above the file's directory (up to the manifests root): a
    GitOps tool pointed at that directory renders it, and applies nothing else below it."""
    for directory in [path.parent, *path.parent.parents]:
        if directory in tree:
            return tree[directory]
        if directory == top or top not in directory.parents:
            return None
    return None


def _sops_encrypted(data: Mapping[str, Any]) -> bool:
    """A document SOPS encrypted: its values ENC[...], its key and MAC in a top-level `sops` block."""
    block = data.get("sops")
    return isinstance(block, Mapping) and "mac" in block and "lastmodified" in block


def _tab_at(text: str, mark: Any) -> bool:
    """Whether a parse error points at a tab (libyaml only says "cannot start any token")."""
    if mark is None:
        return False
    lines = text.splitlines()
    if not 0 <= mark.line < len(lines):
        return False
    line = lines[mark.line]
    return "\t" in line[: mark.column + 1] and not line[: mark.column].strip(" \t-:")


class _Walker(Rendering):
    def __init__(self, result: ManifestSet) -> None:
        self.result = result
        self.seen: set[Path] = set()
        self.excluded: set[Path] = set()
        self._renderer: list[str] | None | bool = False  # False: not looked for yet
        self.real_roots = tuple(r for r in (files.real_path(root) for root in result.roots) if isinstance(r, Path))
        self.bytes_read = 0
        self.full = False  # a limit on the whole walk was reached: read nothing more
        self._starts: dict[Path, dict[tuple[Any, Any], int]] = {}
        self._vetted: dict[Path, str | None] = {}
        self.flux = FluxPaths((), Path("."))

    # --- scanning -----------------------------------------------------------------------------

    def scan(self, root: Path) -> tuple[list[Path], list[Path]]:
        """(YAML files, kustomization directories) under `root`; charts, hidden directories and
        JSON files are listed as not followed."""
        found: list[Path] = []
        kustomizations: list[Path] = []
        walked: set[Path] = set()
        stack = [(root, 0)]
        while stack:
            directory, depth = stack.pop()
            real = directory.resolve()
            if real in walked:
                continue  # reached again through a symlink: its files are read once
            walked.add(real)
            if depth >= MAX_WALK_DEPTH:
                self.result.problems.append(LoadProblem(directory, None, f"is more than {MAX_WALK_DEPTH} directories "
                                                        "deep: not walked"))
                continue
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError as exc:
                self.result.problems.append(LoadProblem(directory, None, f"unreadable: {exc.strerror or exc}"))
                continue
            names = {e.name for e in entries}
            if "Chart.yaml" in names and directory != root:
                self.chart(directory)
                continue
            kustomized = kustomize.kustomization_file(directory) is not None
            if kustomized:
                kustomizations.append(directory)
            for entry in reversed(entries):
                path = Path(entry.path)
                inspected = files.inspect(path, self.real_roots)
                if inspected.real is not None and inspected.real in self.excluded:
                    continue
                if entry.name.startswith("."):
                    if entry.name not in (".git",) and entry.is_dir():
                        self.skip(path, "a hidden directory: not read")
                    continue
                if entry.name == "testdata" and entry.is_dir():
                    # Go's convention (the go tool ignores it): a program's test fixtures, some
                    # deliberately broken, never manifests to deploy.
                    self.skip(path, "a testdata directory (a program's test fixtures): not read; pass it as "
                                    "--manifests-dir to judge it")
                    continue
                wanted = path.suffix in YAML_SUFFIXES or path.suffix == ".json"
                if inspected.kind == "dir" and inspected.real is not None:
                    if inspected.real == real or inspected.real in real.parents:
                        self.result.problems.append(LoadProblem(path, None, f"is a symlink loop (back to "
                                                                f"{inspected.real}): not followed"))
                    else:
                        stack.append((path, depth + 1))
                elif inspected.kind == "file":
                    if wanted and entry.name not in KUSTOMIZATION_NAMES:
                        found.append(path)  # JSON is listed unless a kustomization consumes it
                elif inspected.kind == "outside":  # said only of what would have been read
                    if wanted or os.path.isdir(path):
                        self.result.problems.append(LoadProblem(path, None, inspected.message))
                elif kustomized and inspected.kind == "problem":
                    continue  # the kustomization says what it lists and cannot read; the rest is not read
                elif wanted or inspected.message == files.LOOP:
                    self.result.problems.append(LoadProblem(path, None, inspected.message))
        return sorted(found), sorted(kustomizations)

    def skip(self, path: Path, reason: str, line: int | None = None) -> None:
        self.result.not_followed.append(LoadProblem(path, line, reason))

    def chart(self, directory: Path) -> None:
        """A Helm chart: its templates need helm; KServe's own values are read."""
        self.skip(directory, "a Helm chart: its templates are not rendered (that needs helm and its values)")

    # --- a tree -------------------------------------------------------------------------------

    def load_tree(self, root: Path) -> None:
        found, directories = self.scan(root)
        self.flux = FluxPaths(found, root)
        tree: dict[Path, kustomize.Kustomization] = {}
        for directory in directories:
            path = kustomize.kustomization_file(directory)
            assert path is not None
            spec = self.kustomization_spec(path)
            if spec is not None:
                tree[directory.resolve()] = kustomize.read_kustomization(path, spec)
        included = {d for k in tree.values() for d in k.dirs}
        consumed = {f for k in tree.values() for f in k.files}
        for k in tree.values():
            for missing, why in k.missing.items():
                self.result.problems.append(LoadProblem(k.path, None, f"lists {missing!r}, which {why}"))
        roots = [d for d in tree if d not in included]
        reached = {m.directory for d in roots for m in kustomize.closure(tree[d], tree)}
        for directory, k in sorted(tree.items()):
            if directory in included and directory in reached:
                continue
            if directory in included:  # in a cycle of kustomizations: kustomize says what it makes of it
                self.render_root(k, tree)
                continue
            if k.spec.get("kind") == "Component":
                self.skip(k.path, "a kustomize Component no kustomization here uses: it is rendered only through "
                                  "the kustomizations that list it under components")
                continue
            self.render_root(k, tree)
        top = root.resolve()
        for path in found:
            resolved = path.resolve()
            if resolved in consumed:
                continue
            owner = _owning_kustomization(resolved, tree, top)
            if owner is not None:
                where = "beside it" if owner.directory == resolved.parent else f"above it ({owner.directory.name}/)"
                self.skip(path, f"not listed by the kustomization {where} ({owner.path.name}): "
                                "not part of what it renders")
            elif path.suffix == ".json":
                self.skip(path, "a JSON file: not read (manifests are YAML)")
            else:
                self.load_file(path)

    def kustomization_spec(self, path: Path) -> Mapping[str, Any] | None:
        documents = self.read_documents(path)
        if documents is None:
            return None
        spec = documents[0][1] if documents else None
        if not isinstance(spec, Mapping):
            self.result.problems.append(LoadProblem(path, 1, "is not a kustomization mapping"))
            return None
        return spec

    def read_documents(self, path: Path) -> list[tuple[int, Any]] | None:
        resolved = files.real_path(path)
        if isinstance(resolved, str):
            self.result.problems.append(LoadProblem(path, None, resolved))
            return None
        if resolved in self.seen or self.full:
            return None
        self.seen.add(resolved)
        if len(self.result.files) >= MAX_MANIFEST_FILES or self.bytes_read >= MAX_TOTAL_MANIFEST_BYTES:
            self.full = True
            self.result.problems.append(LoadProblem(
                path, None, f"not read: the manifests hold more than {MAX_MANIFEST_FILES:,} YAML files or "
                f"{MAX_TOTAL_MANIFEST_BYTES:,} bytes; point --manifests-dir at the serving manifests only"))
            return None
        self.result.files.append(path)
        try:
            text = files.read_text(path, min(MAX_MANIFEST_BYTES, MAX_TOTAL_MANIFEST_BYTES - self.bytes_read))
        except ValueError as exc:
            self.result.problems.append(LoadProblem(path, None, str(exc)))
            return None
        self.bytes_read += len(text)
        if HELM_EXPRESSION.search(text):
            self.skip(path, "a Helm template ({{ .Values ... }}): not rendered")
            return None
        try:
            return list(parse_documents(text))
        except yaml.constructor.ConstructorError as exc:
            # Valid YAML with an application's tags (mkdocs' !!python/name:...): not a manifest.
            self.skip(path, f"YAML with an application's tags ({getattr(exc, 'problem', '') or exc}): not a "
                            "Kubernetes manifest, not read")
            return None
        except yaml.YAMLError as exc:
            if "{{" in text and not isinstance(exc, yamlsafe.YAMLLimitError):  # a Go/Helm template
                self.skip(path, "a template ({{ ... }}): not rendered")
                return None
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(exc, "problem", None) or str(exc)
            if _tab_at(text, mark):
                problem += " (a tab: YAML indents with spaces only)"
            what = "goes past the suite's YAML bounds" if isinstance(exc, yamlsafe.YAMLLimitError) else "is not valid YAML"
            self.result.problems.append(LoadProblem(path, line, f"{what}: {problem}"))
            return None

    def load_file(self, path: Path) -> None:
        documents = self.read_documents(path)
        for line, data in documents or []:
            self.add(path, line, data)

    def add(self, path: Path, line: int, data: Any, via: Path | None = None) -> None:
        if data is None:
            return
        if options_file.is_options_document(data):
            self.skip(path, "the suite's own options file: not a manifest under test", line)
            return
        if is_kserve_helm_values(data, path):
            self.result.resources.append(Resource(data, path, line, HELM_VALUES_KIND, via))
            return
        if isinstance(data, Mapping) and templated_name(data):
            self.skip(path, f"{data.get('kind', 'an object')} named by a template placeholder: a template, not rendered",
                      line)
            return
        if not isinstance(data, Mapping) or "kind" not in data or "apiVersion" not in data:
            if isinstance(data, Mapping) and {"metadata", "spec"} & set(data) and not is_values_file(path):
                missing = " and ".join(k for k in ("apiVersion", "kind") if k not in data)
                self.result.problems.append(LoadProblem(
                    path, line, f"an object (it has {', '.join(sorted({'metadata', 'spec'} & set(data)))}) without "
                    f"{missing}: kubectl and kustomize refuse it"))
                return
            reason = ("Helm values of another chart than KServe's: not read" if path.name.startswith("values")
                      else "not a Kubernetes object (no kind/apiVersion)")
            self.skip(path, reason, line)
            return
        if str(data["apiVersion"]).partition("/")[0] in KUSTOMIZE_GROUPS:
            self.skip(path, f"kustomize's own {data['kind']} (its input, never an API object): not judged", line)
            return
        if _sops_encrypted(data):
            # SOPS keeps its metadata in the file; Flux and `sops -d` drop it before applying.
            data = {key: value for key, value in data.items() if key != "sops"}
        if data["kind"] == "List":
            for item in data.get("items") or []:
                self.add(path, line, item, via)
            return
        meta = data.get("metadata") if isinstance(data.get("metadata"), Mapping) else {}
        if not meta.get("name"):
            if meta.get("generateName"):  # `kubectl create` names it: judged under that prefix
                data = {**data, "metadata": {**meta, "name": f"{meta['generateName']}<generated>"}}
            else:
                self.result.nameless.append(LoadProblem(path, line, f"{data['kind']} has no metadata.name"))
                self.result.nameless_documents.append(data)
                return
        group = str(data.get("apiVersion", "")).rpartition("/")[0]
        if POINTER_KINDS.get(str(data["kind"])) == group:
            self.skip(path, f"Argo CD {data['kind']} {data['metadata']['name']}: its sources are not followed", line)
        self.result.resources.append(Resource(data, path, line, via=via))

    def note_duplicates(self) -> None:
        seen: dict[tuple[str, str | None, str], Resource] = {}
        for resource in self.result.resources:
            key = (resource.kind, resource.namespace, resource.name)
            first = seen.setdefault(key, resource)
            if first is not resource and first.body != resource.body:
                self.result.notices.append(
                    f"{resource.kind} {resource.namespace or ''}/{resource.name} is declared twice, differently: "
                    f"{first.where} and {resource.where}")

"""The manifests under test as data: objects with where they were written, problems met while
reading, and what was not followed (and why)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving_conformance.base.limits import MAX_IDENT_CHARS
from serving_conformance.base.text import clip

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
    # The kustomization that rendered it (its patches, namespace and images applied), if any.
    via: Path | None = None

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
        ident = f"{alias}/{self.namespace}/{self.name}" if self.namespace else f"{alias}/{self.name}"
        return clip(ident, MAX_IDENT_CHARS)

    @property
    def where(self) -> str:
        rendered = f" (as rendered by {self.via})" if self.via is not None else ""
        return f"{self.path}:{self.line}{rendered}"


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
    # What was read but not judged, and what could not be followed, each with the reason: listed
    # in the terminal summary and the report, never dropped silently.
    not_followed: list[LoadProblem] = field(default_factory=list)
    # Facts found while reading that qualify the verdict (duplicate objects, detected pins).
    notices: list[str] = field(default_factory=list)
    # Documents with a kind but no metadata.name: an object of a kind the API server serves is a
    # problem; a tool's document (a report, a CLI's config) is not followed. Decided once the
    # schemas are known (classify_nameless), where the two lists are parallel.
    nameless: list[LoadProblem] = field(default_factory=list)
    nameless_documents: list[Mapping[str, Any]] = field(default_factory=list, repr=False)
    # Pins the repository declares itself, e.g. {"gateway-api": ("1.5.0", "standard")}.
    pins: dict[str, tuple[str, str]] = field(default_factory=dict)
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

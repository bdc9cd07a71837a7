"""The published schemas, loaded once: the CRDs of the pinned KServe and Gateway API releases with
their objects closed (cached as JSON beside the release files), Kubernetes' strict schemas from
`kubernetes-validate` with their references inlined, and what each group the suite knows serves
(Kubernetes', KServe's, Gateway API's and Istio's), so an unknown kind or version is named as such.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from serving_conformance.base.upstream import (
    UpstreamUnavailable,
    crd_documents,
    gateway_api_files,
    istio_crd_files,
    kserve_files,
)
from serving_conformance.base.versions import ISTIO_API
from serving_conformance.manifests.model import Resource
from serving_conformance.rules.findings import CannotCheck, RuleContext

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
KSERVE_GROUP = "serving.kserve.io"
GATEWAY_GROUP = "gateway.networking.k8s.io"

# Value constraints of a structural schema: their branches add no fields, so they are never closed
# (a oneOf branch naming only `type` would otherwise refuse the `value` beside it).
_JUNCTORS = ("oneOf", "anyOf", "allOf", "not")
# The version of how schemas are closed: part of the cache file's name, so a change is never served stale.
CLOSING = "2"


def _closed(schema: Any) -> Any:
    """A copy of a CRD schema where every object with properties rejects unknown fields."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    result = {k: (v if k in _JUNCTORS else _closed(v)) for k, v in schema.items()}
    if (
        "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    if result.get("nullable") and isinstance(result.get("type"), str):
        result["type"] = [result["type"], "null"]
    return result


def _crd_schemas(directory: Path) -> dict[str, Any]:
    """Closed schemas by "group/version/Kind", converted once from the CRDs and cached as JSON."""
    cached = directory / f".closed-schemas-{CLOSING}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    schemas = {}
    for path in sorted(directory.rglob("*.yaml")):
        for document in yaml.load_all(path.read_text(), Loader=_YAML_LOADER):
            if not isinstance(document, Mapping) or document.get("kind") != "CustomResourceDefinition":
                continue
            spec = document["spec"]
            for version in spec.get("versions", []):
                schema = version.get("schema", {}).get("openAPIV3Schema")
                if schema:
                    schema = _closed(schema)
                    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                    schemas[f"{spec['group']}/{version['name']}/{spec['names']['kind']}"] = schema
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(json.dumps(schemas))
    tmp.replace(cached)
    return schemas


@lru_cache(maxsize=None)
def _crd_validators(directory: str) -> dict[str, jsonschema.protocols.Validator]:
    return {key: jsonschema.Draft7Validator(schema) for key, schema in _crd_schemas(Path(directory)).items()}


def kserve_validators(version: str) -> dict:
    return _crd_validators(str(kserve_files(version) / "config" / "crd" / "full"))


def gateway_validators(version: str, channel: str) -> dict:
    return _crd_validators(str(gateway_api_files(version) / "config" / "crd" / channel))


@lru_cache(maxsize=None)
def core_schema_dir(kubernetes_version: str) -> Path:
    minor = ".".join(kubernetes_version.lstrip("v").split(".")[:2])
    root = importlib_resources.files("kubernetes_validate") / "kubernetes-json-schema"
    candidates = sorted(
        (p for p in root.iterdir() if p.name.endswith("-local-strict")),
        key=lambda p: tuple(int(x) for x in p.name[1:].split("-")[0].split(".")[:2]),
    )
    chosen = [p for p in candidates if p.name.startswith(f"v{minor}.")]
    if not chosen:
        raise CannotCheck(
            f"kubernetes-validate has no schemas for Kubernetes {minor} "
            f"(it has {candidates[0].name[1:5]} to {candidates[-1].name[1:5]}); upgrade it"
        )
    return Path(str(chosen[-1]))


@lru_cache(maxsize=None)
def _core_definitions(schema_dir: Path) -> dict[str, Any]:
    return json.loads((schema_dir / "_definitions.json").read_text())["$defs"]


def _inline_refs(node: Any, definitions: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """The schema with its $refs replaced by the definitions they name (a recursive definition is
    left open below its first repetition): validation then never resolves a reference, which
    makes it about twice as fast."""
    if isinstance(node, list):
        return [_inline_refs(item, definitions, seen) for item in node]
    if not isinstance(node, dict):
        return node
    reference = node.get("$ref")
    if not isinstance(reference, str):  # none, or a property named "$ref" (CRDs describe JSON schemas)
        return {key: _inline_refs(value, definitions, seen) for key, value in node.items()}
    name = reference.rpartition("/")[2]
    rest = {key: _inline_refs(value, definitions, seen) for key, value in node.items() if key != "$ref"}
    if name in seen or name not in definitions:
        return rest
    return {**_inline_refs(definitions[name], definitions, (*seen, name)), **rest}


@lru_cache(maxsize=4096)
def core_validator(schema_dir: Path, filename: str) -> jsonschema.protocols.Validator | None:
    path = schema_dir / filename
    if not path.is_file():
        return None
    schema = _inline_refs(json.loads(path.read_text()), _core_definitions(schema_dir))
    return jsonschema.Draft202012Validator(schema)


def core_filename(resource: Resource) -> str:
    group, _, version = resource.api_version.rpartition("/")
    prefix = group.partition(".")[0]
    api = f"{prefix}-{version}" if prefix else version
    return f"{resource.kind.lower()}-{api}.json"


# Kubernetes' own groups whose name has no dot (the rest end in .k8s.io, but not every such group
# is Kubernetes' own: the Inference Extension's is not).
CORE_GROUPS = ("", "apps", "batch", "autoscaling", "policy", "extensions")


ISTIO_GROUPS = ("networking.istio.io", "security.istio.io")


@lru_cache(maxsize=None)
def _core_served(kubernetes_version: str) -> dict[str, dict[str, set[str]]]:
    """group -> kind -> versions Kubernetes serves, from its published definitions."""
    served: dict[str, dict[str, set[str]]] = {}
    for definition in _core_definitions(core_schema_dir(kubernetes_version)).values():
        for gvk in definition.get("x-kubernetes-group-version-kind") or []:
            served.setdefault(gvk["group"], {}).setdefault(gvk["kind"], set()).add(gvk["version"])
    return served


def _from_crds(keys: Iterable[str]) -> dict[str, dict[str, set[str]]]:
    served: dict[str, dict[str, set[str]]] = {}
    for key in keys:
        group, version, kind = key.split("/")
        served.setdefault(group, {}).setdefault(kind, set()).add(version)
    return served


@lru_cache(maxsize=None)
def _istio_served(version: str) -> dict[str, dict[str, set[str]]]:
    keys = []
    for crd in crd_documents(istio_crd_files(version) / "kubernetes"):
        spec = crd["spec"]
        keys += [f"{spec['group']}/{v['name']}/{spec['names']['kind']}" for v in spec.get("versions") or []]
    return _from_crds(keys)


def served_in(group: str, ctx: RuleContext) -> dict[str, set[str]] | None:
    """kind -> versions the pinned releases serve in `group`; None for a group not known here."""
    expect = ctx.expect
    try:
        if group == KSERVE_GROUP:
            return _from_crds(kserve_validators(expect.kserve_version))[group]
        if group == GATEWAY_GROUP:
            return _from_crds(gateway_validators(expect.gateway_api_version, expect.gateway_api_channel))[group]
        if group in ISTIO_GROUPS:
            return _istio_served(ISTIO_API)[group]
        core = _core_served(expect.kubernetes_version)
        if group in core or group in CORE_GROUPS:  # Kubernetes' own (not every *.k8s.io group is)
            return core.get(group, {})
    except (UpstreamUnavailable, CannotCheck):
        return None
    return None


def not_served(resource: Resource, ctx: RuleContext) -> str | None:
    """Why the pinned releases refuse this apiVersion and kind, naming what they serve; None when
    they serve it, or the group is not known here."""
    group, _, version = resource.api_version.rpartition("/")
    served = served_in(group, ctx)
    if served is None or version in served.get(resource.kind, set()):
        return None
    where = f"the pinned releases (Kubernetes {ctx.expect.kubernetes_version}, KServe {ctx.expect.kserve_version}, " \
            f"Gateway API {ctx.expect.gateway_api_version})"
    if resource.kind in served:
        versions = ", ".join(f"{group + '/' if group else ''}{v}" for v in sorted(served[resource.kind]))
        return f"{resource.api_version} {resource.kind}: {where} serve {resource.kind} at {versions} only"
    close = difflib.get_close_matches(resource.kind, list(served))
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"{resource.api_version} {resource.kind}: {where} serve no kind {resource.kind!r} in group " \
           f"{group or 'core'!r}{hint}"


def kind_served(api_version: str, kind: str, ctx: RuleContext) -> bool | None:
    """Whether the pinned releases serve `kind` at `api_version`: True or False for a group known
    here, None for other groups (Argo CD, KEDA, a tool's own apiVersion) or where the schemas are
    not obtainable."""
    group, _, version = api_version.rpartition("/")
    served = served_in(group, ctx)
    return None if served is None else version in served.get(kind, set())

"""Schema validation of the manifests, strict: an unknown field is an error.

Core kinds are validated against Kubernetes' OpenAPI schemas as published in the
`kubernetes-validate` package (strict variants). KServe and Gateway API objects are validated
against the openAPIV3Schema of the CRDs of the pinned releases, read from their Go module zips;
objects in CRD schemas are made closed (additionalProperties: false) unless the schema preserves
unknown fields, which is what `kubectl apply` with strict field validation enforces. Helm values
of the kserve-resources chart are checked against the keys the chart's own values.yaml defines.
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
from serving_conformance.manifests.model import HELM_VALUES_KIND, Resource
from serving_conformance.rules.findings import CannotCheck, Finding, Rule, RuleContext

MAX_ERRORS = 8
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
KSERVE_GROUP = "serving.kserve.io"
GATEWAY_GROUP = "gateway.networking.k8s.io"
# Keys of chart values whose content is free-form (maps of user labels, resources, ...).
_FREE_FORM_DEFAULTS = ({}, [], None, "")


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


def _kserve_validators(version: str) -> dict:
    return _crd_validators(str(kserve_files(version) / "config" / "crd" / "full"))


def _gateway_validators(version: str, channel: str) -> dict:
    return _crd_validators(str(gateway_api_files(version) / "config" / "crd" / channel))


@lru_cache(maxsize=None)
def _core_schema_dir(kubernetes_version: str) -> Path:
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
    name = reference.rsplit("/", 1)[-1]
    rest = {key: _inline_refs(value, definitions, seen) for key, value in node.items() if key != "$ref"}
    if name in seen or name not in definitions:
        return rest
    return {**_inline_refs(definitions[name], definitions, (*seen, name)), **rest}


@lru_cache(maxsize=4096)
def _core_validator(schema_dir: Path, filename: str) -> jsonschema.protocols.Validator | None:
    path = schema_dir / filename
    if not path.is_file():
        return None
    schema = _inline_refs(json.loads(path.read_text()), _core_definitions(schema_dir))
    return jsonschema.Draft202012Validator(schema)


def _core_filename(resource: Resource) -> str:
    group, _, version = resource.api_version.rpartition("/")
    prefix = group.split(".", 1)[0] if group else ""
    api = f"{prefix}-{version}" if prefix else version
    return f"{resource.kind.lower()}-{api}.json"


# Kubernetes' own groups whose name has no dot (the rest end in .k8s.io, but not every such group
# is Kubernetes' own: the Inference Extension's is not).
CORE_GROUPS = ("", "apps", "batch", "autoscaling", "policy", "extensions")


class NotServed(Exception):
    """The pinned releases serve no such kind (or not at this version) in a group known here."""


ISTIO_GROUPS = ("networking.istio.io", "security.istio.io")


@lru_cache(maxsize=None)
def _core_served(kubernetes_version: str) -> dict[str, dict[str, set[str]]]:
    """group -> kind -> versions Kubernetes serves, from its published definitions."""
    served: dict[str, dict[str, set[str]]] = {}
    for definition in _core_definitions(_core_schema_dir(kubernetes_version)).values():
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
            return _from_crds(_kserve_validators(expect.kserve_version)).get(group, {})
        if group == GATEWAY_GROUP:
            return _from_crds(_gateway_validators(expect.gateway_api_version, expect.gateway_api_channel)).get(group, {})
        if group in ISTIO_GROUPS:
            return _istio_served(ISTIO_API).get(group, {})
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
    close = difflib.get_close_matches(resource.kind, list(served), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"{resource.api_version} {resource.kind}: {where} serve no kind {resource.kind!r} in group " \
           f"{group or 'core'!r}{hint}"


def _validator_for(resource: Resource, ctx: RuleContext) -> jsonschema.protocols.Validator:
    why = not_served(resource, ctx)
    if why is not None:
        raise NotServed(why)
    group = resource.group
    key = f"{resource.api_version}/{resource.kind}"
    try:
        if group == KSERVE_GROUP:  # served, so defined (what it serves is read from these validators)
            return _kserve_validators(ctx.expect.kserve_version)[key]
        if group == GATEWAY_GROUP:
            return _gateway_validators(ctx.expect.gateway_api_version, ctx.expect.gateway_api_channel)[key]
        validator = _core_validator(_core_schema_dir(ctx.expect.kubernetes_version), _core_filename(resource))
    except UpstreamUnavailable as exc:
        raise CannotCheck(f"schema not obtainable on this machine: {exc}") from exc
    if validator is None:  # a kind Kubernetes defines but publishes no schema file for
        raise CannotCheck(f"no schema for {resource.api_version} {resource.kind} in Kubernetes "
                          f"{ctx.expect.kubernetes_version}'s published schemas")
    return validator


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


# Fields the published schemas call required that the API server fills in or lets be absent (its
# own validation decides, checked on a kube-apiserver 1.34): (kind, parent path, field).
SERVER_OPTIONAL = {
    ("RoleBinding", "roleRef", "apiGroup"), ("ClusterRoleBinding", "roleRef", "apiGroup"),
    ("EndpointSlice", "", "endpoints"),
}


def _server_optional(resource: Resource, error: jsonschema.ValidationError) -> bool:
    if error.validator != "required":
        return False
    parent = ".".join(str(p) for p in error.absolute_path)
    missing = [name for name in error.validator_value if name not in (error.instance or {})]
    return all((resource.kind, parent, name) in SERVER_OPTIONAL for name in missing) and bool(missing)


def with_defaults(instance: Any, schema: Any) -> Any:
    """The object as a CRD's structural schema defaults it before validation (the API server
    fills each absent property that has a `default`): a Gateway address without a type is an
    IPAddress there, and its oneOf is judged as such."""
    if isinstance(instance, list) and isinstance(schema, Mapping) and isinstance(schema.get("items"), Mapping):
        return [with_defaults(item, schema["items"]) for item in instance]
    if not isinstance(instance, Mapping) or not isinstance(schema, Mapping):
        return instance
    properties = schema.get("properties") if isinstance(schema.get("properties"), Mapping) else {}
    result = dict(instance)
    for name, sub in properties.items():
        if name in result:
            result[name] = with_defaults(result[name], sub)
        elif isinstance(sub, Mapping) and "default" in sub:
            result[name] = sub["default"]
    return result


def _check_object(resource: Resource, ctx: RuleContext) -> list[Finding]:
    try:
        validator = _validator_for(resource, ctx)
    except NotServed as exc:
        return [Finding(found=str(exc), effect="the API server refuses the object: no such resource",
                        fix="use the kind and apiVersion the pinned release serves")]
    body = dict(resource.body)
    if resource.group in (KSERVE_GROUP, GATEWAY_GROUP):
        body = with_defaults(body, validator.schema)
    errors = sorted((e for e in validator.iter_errors(body) if not _server_optional(resource, e)),
                    key=lambda e: list(map(str, e.absolute_path)))
    findings = [
        Finding(
            found=f"{_path(error)}: {error.message}",
            effect="the API server rejects the object under strict field validation (kubectl's default), or drops the field",
            fix="correct the field against the schema of the pinned release",
        )
        for error in errors[:MAX_ERRORS]
    ]
    if len(errors) > MAX_ERRORS:
        findings.append(Finding(f"... and {len(errors) - MAX_ERRORS} more errors", "", ""))
    return findings


def _unknown_keys(values: Any, defaults: Any, prefix: str) -> list[str]:
    if not isinstance(values, Mapping) or not isinstance(defaults, Mapping) or defaults in _FREE_FORM_DEFAULTS:
        return []
    unknown = []
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in defaults:
            unknown.append(path)
        elif defaults[key] not in _FREE_FORM_DEFAULTS:
            unknown.extend(_unknown_keys(value, defaults[key], path))
    return unknown


def _check_helm_values(resource: Resource, ctx: RuleContext) -> list[Finding]:
    try:
        chart = kserve_files(ctx.expect.kserve_version) / "charts" / "kserve-resources" / "values.yaml"
    except UpstreamUnavailable as exc:
        raise CannotCheck(f"chart values not obtainable on this machine: {exc}") from exc
    defaults = yaml.safe_load(chart.read_text())
    return [
        Finding(
            found=f"{path} is not a value of the kserve-resources {ctx.expect.kserve_version} chart",
            effect="Helm ignores unknown values silently: the setting has no effect",
            fix="correct the key against the chart's values.yaml",
        )
        for path in _unknown_keys(resource.body, defaults, "")
    ]


def _check_schema(resource: Resource, ctx: RuleContext) -> list[Finding]:
    if resource.kind == HELM_VALUES_KIND:
        return _check_helm_values(resource, ctx)
    return _check_object(resource, ctx)


def schema_known(resource: Resource, ctx: RuleContext) -> bool:
    """KServe, Gateway API and core Kubernetes objects, and KServe's Helm values, have schemas here;
    other groups (Argo CD, External Secrets, KEDA...) are not applicable, and listed as such."""
    group = resource.api_version.rpartition("/")[0]
    if resource.kind == HELM_VALUES_KIND or group in (KSERVE_GROUP, GATEWAY_GROUP):
        return True
    if group in ISTIO_GROUPS:
        return not_served(resource, ctx) is not None  # no schema here: only a kind Istio lacks is judged
    if not_served(resource, ctx) is not None:
        return True  # judged: and it fails, naming what the group serves
    if "." in group and not group.endswith(".k8s.io"):
        return False  # a third-party API group: no published Kubernetes schema covers it
    try:
        return _core_validator(_core_schema_dir(ctx.expect.kubernetes_version), _core_filename(resource)) is not None
    except CannotCheck:
        return True  # judged, and skipped with the reason


def kind_served(api_version: str, kind: str, ctx: RuleContext) -> bool | None:
    """Whether the pinned releases serve `kind` at `api_version`: True or False for a group known
    here, None for other groups (Argo CD, KEDA, a tool's own apiVersion) or where the schemas are
    not obtainable."""
    group, _, version = api_version.rpartition("/")
    served = served_in(group, ctx)
    return None if served is None else version in served.get(kind, set())


def classify_nameless(ctx: RuleContext) -> None:
    """Documents without metadata.name: a kind the API server serves needs one (a problem of the
    file); anything else (a tool's config or report borrowing an apiVersion) is not followed."""
    manifests = ctx.manifests
    for problem, data in zip(manifests.nameless, manifests.nameless_documents):
        if kind_served(str(data.get("apiVersion", "")), str(data.get("kind", "")), ctx):
            manifests.problems.append(problem)
        else:
            manifests.not_followed.append(type(problem)(
                problem.path, problem.line,
                f"{data.get('apiVersion')} {data.get('kind')} without metadata.name: not an object an API server "
                "would hold (a tool's configuration or report): not judged"))
    manifests.nameless.clear()
    manifests.nameless_documents.clear()


SCHEMA_VALID = Rule(
    id="schema-valid",
    title="every object validates against the schema of the pinned Kubernetes, KServe and Gateway API releases, unknown fields included",
    applies=lambda resource: True,
    in_context=schema_known,
    check=_check_schema,
    nothing_to_check="no objects in the manifests",
)

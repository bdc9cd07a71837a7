"""Schema validation of the manifests, strict: an unknown field is an error.

The schemas are loaded in `published`. Core kinds are validated against Kubernetes' OpenAPI schemas as published in the
`kubernetes-validate` package (strict variants). KServe and Gateway API objects are validated
against the openAPIV3Schema of the CRDs of the pinned releases, read from their Go module zips;
objects in CRD schemas are made closed (additionalProperties: false) unless the schema preserves
unknown fields, which is what `kubectl apply` with strict field validation enforces. Helm values
of the kserve-resources chart are checked against the keys the chart's own values.yaml defines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema
import yaml

from serving_conformance.base.upstream import UpstreamUnavailable, kserve_files
from serving_conformance.manifests.model import HELM_VALUES_KIND, Resource
from serving_conformance.rules.findings import CannotCheck, Finding, Rule, RuleContext
from serving_conformance.rules.published import (
    GATEWAY_GROUP,
    ISTIO_GROUPS,
    KSERVE_GROUP,
    core_filename,
    core_schema_dir,
    core_validator,
    gateway_validators,
    kind_served,
    kserve_validators,
    not_served,
)

MAX_ERRORS = 8
# Keys of chart values whose content is free-form (maps of user labels, resources, ...).
_FREE_FORM_DEFAULTS = ({}, [], None, "")


class NotServed(Exception):
    """The pinned releases serve no such kind (or not at this version) in a group known here."""


def _validator_for(resource: Resource, ctx: RuleContext) -> jsonschema.protocols.Validator:
    why = not_served(resource, ctx)
    if why is not None:
        raise NotServed(why)
    group = resource.group
    key = f"{resource.api_version}/{resource.kind}"
    try:
        if group == KSERVE_GROUP:  # served, so defined (what it serves is read from these validators)
            return kserve_validators(ctx.expect.kserve_version)[key]
        if group == GATEWAY_GROUP:
            return gateway_validators(ctx.expect.gateway_api_version, ctx.expect.gateway_api_channel)[key]
        validator = core_validator(core_schema_dir(ctx.expect.kubernetes_version), core_filename(resource))
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


def _unknown_keys(values: Any, defaults: Any, prefix: str = "") -> list[str]:
    """Paths of `values` the chart's defaults do not define; free-form defaults are never entered."""
    if not isinstance(values, Mapping) or not isinstance(defaults, Mapping):
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
        for path in _unknown_keys(resource.body, defaults)
    ]


def _check_schema(resource: Resource, ctx: RuleContext) -> list[Finding]:
    if resource.kind == HELM_VALUES_KIND:
        return _check_helm_values(resource, ctx)
    return _check_object(resource, ctx)


def schema_known(resource: Resource, ctx: RuleContext) -> bool:
    """KServe, Gateway API and core Kubernetes objects, and KServe's Helm values, have schemas here;
    other groups (Argo CD, External Secrets, KEDA...) are not applicable, and listed as such."""
    group = resource.group
    if resource.kind == HELM_VALUES_KIND or group in (KSERVE_GROUP, GATEWAY_GROUP):
        return True
    if group in ISTIO_GROUPS:
        return not_served(resource, ctx) is not None  # no schema here: only a kind Istio lacks is judged
    if not_served(resource, ctx) is not None:
        return True  # judged: and it fails, naming what the group serves
    if "." in group and not group.endswith(".k8s.io"):
        return False  # a third-party API group: no published Kubernetes schema covers it
    try:
        return core_validator(core_schema_dir(ctx.expect.kubernetes_version), core_filename(resource)) is not None
    except CannotCheck:
        return True  # judged, and skipped with the reason


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

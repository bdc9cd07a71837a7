"""How KServe reads a predictor: custom containers, the modelcar, its platform configuration, canaries."""

from __future__ import annotations

import re
from pathlib import Path

from serving_conformance.manifests.design import is_kserve_canary_route
from serving_conformance.manifests.files import repository_top
from serving_conformance.manifests.model import Resource
from serving_conformance.manifests.platform_config import STANDARD_MODES, is_kserve_config, read_config
from serving_conformance.manifests.workloads import (
    KSERVE_CONTAINER,
    MODELCAR_MOUNT,
    OCI_DIGEST_URI,
    as_list,
    as_mapping,
    workloads_of,
)
from serving_conformance.rules.common import is_isvc, standard_mode
from serving_conformance.rules.findings import Finding, Rule, RuleContext

# --- Custom containers ------------------------------------------------------------------------


def _uses_containers(resource: Resource) -> bool:
    return is_isvc(resource) and any(w.containers for w in workloads_of(resource))


def _check_custom_container(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    for workload in workloads_of(resource):
        if not workload.containers:
            continue
        if workload.model_spec:
            findings.append(
                Finding(
                    found=f"{workload.label} sets both `model` and `containers`",
                    effect="KServe's validating webhook rejects the InferenceService",
                    fix="keep `containers` (vLLM's own args run verbatim) and drop `model`",
                )
            )
        if workload.component == "predictor" and workload.container(KSERVE_CONTAINER) is None:
            names = ", ".join(repr(c.name) for c in workload.containers)
            findings.append(
                Finding(
                    found=f"{workload.label} containers are named {names}, none {KSERVE_CONTAINER!r}",
                    effect=(
                        "KServe's defaulter renames a single container to kserve-container, so the cluster "
                        "drifts from the manifest"
                        if len(workload.containers) == 1
                        else "KServe reads the storage URI and modelcar wiring from kserve-container; without it "
                        "KServe 0.19's controller fails to reconcile (seen: a nil-pointer panic, nothing created) "
                        "and its pod webhook refuses modelcar pods"
                    ),
                    fix=f"name the serving container {KSERVE_CONTAINER!r}",
                )
            )
    return findings


CUSTOM_CONTAINER = Rule(
    id="custom-container-is-kserve-container",
    title="custom-container predictors name their container kserve-container and never combine model with containers",
    applies=_uses_containers,
    check=_check_custom_container,
    nothing_to_check="no InferenceService with custom containers in the manifests",
)


# --- Modelcar ---------------------------------------------------------------------------------


def _oci_mentions(resource: Resource) -> list[str]:
    mentions = []
    for key, value in as_mapping(resource.metadata.get("annotations")).items():
        if str(value).startswith("oci://"):
            mentions.append(f"annotation {key}")
    for workload in workloads_of(resource):
        for container in workload.containers:
            if str(container.env.get("STORAGE_URI") or "").startswith("oci://"):
                mentions.append(f"{workload.component} container {container.name} env STORAGE_URI")
        if str(workload.model_spec.get("storageUri") or "").startswith("oci://"):
            mentions.append(f"{workload.component}.model.storageUri")
        if str(workload.pod.get("storageUri") or "").startswith("oci://"):
            mentions.append(f"{workload.component}.storageUri")
    return mentions


def _uses_modelcar(resource: Resource) -> bool:
    return is_isvc(resource) and bool(_oci_mentions(resource))


def _check_modelcar(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    mentions = _oci_mentions(resource)
    if any(m.startswith("annotation") for m in mentions):
        findings.append(
            Finding(
                found=f"an oci:// URI is set as an {', '.join(m for m in mentions if m.startswith('annotation'))}",
                effect="KServe injects nothing for an annotation: no modelcar, nothing at /mnt/models",
                fix=f"set env STORAGE_URI on {KSERVE_CONTAINER!r}",
            )
        )
    for workload in workloads_of(resource):
        if workload.containers and workload.model_spec.get("storageUri"):
            findings.append(
                Finding(
                    found=f"{workload.label} sets model.storageUri together with containers",
                    effect="KServe's webhook rejects predictor.model combined with containers",
                    fix=f"move the URI to env STORAGE_URI on {KSERVE_CONTAINER!r}",
                )
            )
        for other in workload.containers + workload.init_containers:
            if other.name != KSERVE_CONTAINER and str(other.env.get("STORAGE_URI") or "").startswith("oci://"):
                findings.append(Finding(
                    found=f"{workload.label} sets the oci:// STORAGE_URI on container {other.name!r}",
                    effect=f"KServe reads a custom predictor's model URI from {KSERVE_CONTAINER!r} only: no modelcar "
                           "is injected and nothing appears at /mnt/models",
                    fix=f"move env STORAGE_URI to {KSERVE_CONTAINER!r}",
                ))
        serving = workload.container(KSERVE_CONTAINER)
        if serving is None:
            continue
        uri = serving.env.get("STORAGE_URI")
        if not uri or not uri.startswith("oci://"):
            continue
        if not OCI_DIGEST_URI.match(uri):
            findings.append(
                Finding(
                    found=f"{workload.label} STORAGE_URI={uri!r} is not pinned by digest",
                    effect="the modelcar image (the model) can change under the same manifest",
                    fix="use oci://<registry>/<repo>@sha256:<64 hex digits>",
                )
            )
        if serving.is_vllm and serving.vllm.model != MODELCAR_MOUNT:
            findings.append(
                Finding(
                    found=f"{workload.label} runs vLLM with model {serving.vllm.model!r}",
                    effect=f"the modelcar links the model at {MODELCAR_MOUNT}; vLLM would look elsewhere (or download)",
                    fix=f"pass --model={MODELCAR_MOUNT}",
                )
            )
        env = serving.env
        missing = [
            name
            for name, wanted in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"))
            if env.get(name) != wanted
        ]
        if missing:
            findings.append(
                Finding(
                    found=f"{workload.label} does not set {', '.join(f'{n}=1' for n in missing)}",
                    effect="vLLM may try to reach the Hugging Face hub for a model it already has",
                    fix="set HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1",
                )
            )
        # Empty is as good as unset (getpass skips an empty USER; an empty HOME puts ~/.cache at /.cache);
        # a value from a reference (None here) is taken as set.
        unset = [name for name in ("USER", "HOME") if env.get(name, "") == ""]
        if unset:
            findings.append(
                Finding(
                    found=f"{workload.label} does not set {' and '.join(unset)} (or sets it empty)",
                    effect=(
                        "the modelcar runs the container as uid 1010, which has no passwd entry: "
                        "vLLM crashes in getpass.getuser() and cannot write /.cache"
                    ),
                    fix="set USER (any name) and HOME=/tmp",
                )
            )
    return findings


MODELCAR = Rule(
    id="modelcar-oci-digest-at-mnt-models",
    title="the modelcar URI is a digest-pinned oci:// STORAGE_URI on kserve-container and vLLM reads /mnt/models offline",
    applies=_uses_modelcar,
    check=_check_modelcar,
    nothing_to_check="no InferenceService using an oci:// modelcar in the manifests",
)


# --- KServe platform configuration ------------------------------------------------------------


def _check_platform(resource: Resource, ctx: RuleContext) -> list[Finding]:
    config = read_config(resource)
    findings = [
        Finding(found=problem, effect="KServe cannot start with this configuration", fix="fix the JSON")
        for problem in config.problems
    ]

    def origin(attribute: str, default: str) -> str:
        return config.origins.get(attribute) or f"(not set; KServe's default is {default})"

    if config.deployment_mode not in STANDARD_MODES:
        findings.append(
            Finding(
                found=f"deployment mode {config.deployment_mode!r} at {origin('deployment_mode', 'Serverless/Knative')}",
                effect="InferenceServices are reconciled as Knative services, which this platform does not run",
                fix="set the default deployment mode to Standard",
            )
        )
    if config.enable_gateway_api is not True:
        findings.append(
            Finding(
                found=f"enableGatewayApi is {config.enable_gateway_api!r} {origin('enable_gateway_api', 'false')}",
                effect="KServe creates Istio/Ingress objects instead of HTTPRoutes on the gateway",
                fix="set enableGatewayApi to true",
            )
        )
    gateway = config.kserve_ingress_gateway
    if not gateway or not re.fullmatch(r"[a-z0-9-]+/[a-z0-9-]+", str(gateway)):
        findings.append(
            Finding(
                found=f"kserveIngressGateway is {gateway!r}",
                effect="with the Gateway API on, the KServe manager exits at start unless a gateway is named as <namespace>/<name>",
                fix="name the gateway, e.g. kserve/kserve-ingress-gateway",
            )
        )
    if config.disable_istio_virtual_host is not True:
        findings.append(
            Finding(
                found=f"disableIstioVirtualHost is {config.disable_istio_virtual_host!r} {origin('disable_istio_virtual_host', 'false')}",
                effect=(
                    "the controller keeps watching Istio VirtualServices; without Istio's CRD every "
                    "reconcile records a VirtualServiceCRDNotFound warning"
                ),
                fix="set disableIstioVirtualHost to true",
            )
        )
    if config.enable_modelcar is False:
        findings.append(
            Finding(
                found=f"enableModelcar is false at {config.origins.get('enable_modelcar')}",  # only ever false as set
                effect="oci:// models are not linked at /mnt/models by a modelcar sidecar",
                fix="set enableModelcar to true",
            )
        )
    if resource.kind == "ConfigMap" and "ingress" in as_mapping(resource.body.get("data")):
        if not config.ingress_gateway:
            findings.append(
                Finding(
                    found="data.ingress has no ingressGateway",
                    effect="the KServe manager refuses an ingress config without ingressGateway, even in Standard mode",
                    fix="keep KServe's ingressGateway value in data.ingress",
                )
            )
    return findings


KSERVE_CHART = "kserve-resources"


def _kserve_chart_sources(resource: Resource) -> list[dict]:
    """The sources of an Argo CD Application that install KServe's kserve-resources chart."""
    if resource.kind != "Application" or not resource.api_version.startswith("argoproj.io/"):
        return []
    sources = [as_mapping(resource.spec.get("source"))] + [as_mapping(s) for s in as_list(resource.spec.get("sources"))]
    return [dict(s) for s in sources if s.get("chart") == KSERVE_CHART or KSERVE_CHART in str(s.get("path") or "")]


def _check_argo_values(resource: Resource, ctx: RuleContext) -> list[Finding]:
    """An Application's KServe values files ($ref/path into this repository) must exist: with
    ignoreMissingValueFiles a missing one silently leaves the chart's defaults."""
    findings = []
    for source in _kserve_chart_sources(resource):
        helm = as_mapping(source.get("helm"))
        for value_file in as_list(helm.get("valueFiles")):
            text = str(value_file)
            if not text.startswith("$"):
                continue
            relative = text.split("/", 1)[1] if "/" in text else ""
            if any((root / relative).is_file() for root in repository_roots(ctx.manifests.roots)):
                continue
            silent = bool(helm.get("ignoreMissingValueFiles"))
            findings.append(Finding(
                found=f"Argo CD Application {resource.name} installs {KSERVE_CHART} with values {text!r}, "
                      f"which is not in the repository ({', '.join(str(r) for r in ctx.manifests.roots)})",
                effect=("with ignoreMissingValueFiles the chart's defaults are deployed (Knative mode, no Gateway "
                        "API, Istio virtual hosts on), whatever the platform's values say" if silent
                        else "Argo CD cannot render the chart: KServe is not synced"),
                fix="point valueFiles at the platform's KServe values file",
            ))
    return findings


def repository_roots(roots: tuple[Path, ...]) -> list[Path]:
    """Where a `$ref/path` of the repository may start: each manifests directory, and each
    directory above it up to its git repository's top (a manifests directory is often a part of
    the repository the Application's values come from)."""
    found: list[Path] = []
    for root in roots:
        top = repository_top(root)
        chain = [root, *root.parents] if top is not None else [root]
        for directory in chain:
            found.append(directory)
            if directory == top:
                break
    return list(dict.fromkeys(found))


def _judge_platform(resource: Resource, ctx: RuleContext) -> list[Finding]:
    if _kserve_chart_sources(resource):
        return _check_argo_values(resource, ctx)
    return _check_platform(resource, ctx)


PLATFORM_CONFIG = Rule(
    id="kserve-platform-config",
    title="KServe runs in Standard mode with the Gateway API on a named gateway, Istio virtual hosts off and the modelcar on",
    applies=lambda resource: is_kserve_config(resource) or bool(_kserve_chart_sources(resource)),
    check=_judge_platform,
    nothing_to_check="no inferenceservice-config ConfigMap or kserve-resources Helm values in the manifests",
)


# --- Canary split -----------------------------------------------------------------------------


def _is_split_route(resource: Resource) -> bool:
    if resource.kind != "HTTPRoute":
        return False
    return any(len(as_list(as_mapping(rule).get("backendRefs"))) > 1 for rule in as_list(resource.spec.get("rules")))


def _declares_canary(resource: Resource) -> bool:
    if is_isvc(resource):
        return any("canaryTrafficPercent" in w.pod for w in workloads_of(resource))
    return _is_split_route(resource)


def _check_canary(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    config = ctx.kserve_config
    if is_isvc(resource):
        if standard_mode(resource, config):
            findings.append(
                Finding(
                    found=f"{resource.ident} sets canaryTrafficPercent in Standard mode",
                    effect=(
                        f"KServe {ctx.expect.kserve_version} ignores canaryTrafficPercent outside Knative: "
                        "it rolls the one Deployment in place and every request goes to the newest revision"
                    ),
                    fix="declare the split as a weighted HTTPRoute over two InferenceServices' predictor Services",
                )
            )
        return findings
    services = {s.name for s in ctx.manifests.of_kind("Service")}
    services |= {f"{i.name}-predictor" for i in ctx.manifests.of_kind("InferenceService")}
    for index, rule in enumerate(as_list(resource.spec.get("rules"))):
        backends = [as_mapping(b) for b in as_list(as_mapping(rule).get("backendRefs"))]
        if len(backends) < 2:
            continue
        weights = [int(b.get("weight", 1)) for b in backends]
        if sum(1 for w in weights if w > 0) < 2:
            findings.append(
                Finding(
                    found=f"{resource.ident} rules[{index}] weights {dict(zip([b.get('name') for b in backends], weights))}",
                    effect="only one backend receives traffic: the declared canary gets none",
                    fix="give every revision of the split a weight above 0",
                )
            )
        for backend in backends:
            if backend.get("kind", "Service") == "Service" and backend.get("name") not in services:
                findings.append(
                    Finding(
                        found=f"{resource.ident} routes to Service {backend.get('name')!r}, which no manifest declares",
                        effect="the route's ResolvedRefs condition is False and that share of requests fails",
                        fix="point backendRefs at <isvc>-predictor Services of declared InferenceServices (port 80)",
                    )
                )
    if config is not None and config.kserve_ingress_gateway:
        gateway_ns, _, gateway_name = str(config.kserve_ingress_gateway).partition("/")
        parents = [as_mapping(p) for p in as_list(resource.spec.get("parentRefs"))]
        # A parentRef without a namespace names a gateway in the route's own namespace (where a route
        # written without one lands is known only at deploy time: not held against it).
        here = resource.namespace or gateway_ns
        if not any(p.get("name") == gateway_name and p.get("namespace", here) == gateway_ns for p in parents):
            findings.append(
                Finding(
                    found=f"{resource.ident} is not attached to the KServe gateway {config.kserve_ingress_gateway}",
                    effect="the split is not served where clients reach the InferenceServices",
                    fix=f"add parentRefs: [{{name: {gateway_name}, namespace: {gateway_ns}}}]",
                )
            )
    return findings


CANARY = Rule(
    id="canary-split-works-in-standard-mode",
    title="a KServe canary is a weighted split that Standard mode honours, with traffic to every revision",
    applies=_declares_canary,
    in_context=lambda resource, ctx: resource.kind != "HTTPRoute" or is_kserve_canary_route(resource, ctx.manifests),
    check=_check_canary,
    nothing_to_check="no canary (canaryTrafficPercent or a weighted HTTPRoute) in the manifests",
)

"""The offline rules: each documented behaviour that can be judged from the manifests alone."""

from __future__ import annotations

import re
from decimal import Decimal

from serving_conformance.base.quantity import QuantityError, parse_quantity
from serving_conformance.manifests.load import Resource
from serving_conformance.manifests.platform_config import STANDARD_MODES, is_kserve_config, read_config
from serving_conformance.manifests.workloads import (
    GPU_RESOURCE,
    KSERVE_CONTAINER,
    KSERVE_DEFAULT_PORT,
    MODELCAR_MOUNT,
    VLLM_DEFAULT_PORT,
    Container,
    Workload,
    as_list,
    as_mapping,
    workloads_of,
)
from serving_conformance.rules.findings import Finding, Rule, RuleContext

# inferenceservice-config `inferenceService.resource` as shipped by KServe v0.19.
KSERVE_DEFAULT_LIMITS = {"cpu": "1", "memory": "2Gi"}
OCI_DIGEST_URI = re.compile(r"^oci://[^@\s]+/[^@\s]+@sha256:[0-9a-f]{64}$")
VLLM_CPU_MIN_CORES = Decimal(2)


def _is_isvc(resource: Resource) -> bool:
    return resource.kind == "InferenceService"


def _has_workload(resource: Resource) -> bool:
    return bool(workloads_of(resource))


def _vllm_containers(resource: Resource) -> list[tuple[Workload, Container]]:
    return [(w, c) for w in workloads_of(resource) for c in w.vllm_containers]


def _quantity(value: object) -> Decimal | None:
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


# --- KServe fills a missing limit with its default, which can be lower than the request ---------


def _check_limits(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    for workload in workloads_of(resource):
        for container in workload.containers:
            requests, limits = container.requests(), container.limits()
            for name in ("cpu", "memory"):
                if name not in requests:
                    continue
                request = _quantity(requests[name])
                where = f"{workload.label} container {container.name!r}"
                if name not in limits:
                    default = KSERVE_DEFAULT_LIMITS[name]
                    lower = request is not None and request > parse_quantity(default)
                    findings.append(
                        Finding(
                            found=f"{where} requests {name}={requests[name]} with no limits.{name}",
                            effect=(
                                f"KServe's defaulting webhook fills the missing limit with its default "
                                f"{name} limit {default}"
                                + (
                                    ", lower than the request, so the API server rejects the "
                                    "predictor Deployment and the InferenceService never becomes Ready"
                                    if lower
                                    else f", silently capping the container at {default}"
                                )
                            ),
                            fix=f"set resources.limits.{name} explicitly, at least {requests[name]}",
                        )
                    )
                    continue
                limit = _quantity(limits[name])
                if request is not None and limit is not None and limit < request:
                    findings.append(
                        Finding(
                            found=f"{where} limits.{name}={limits[name]} is below requests.{name}={requests[name]}",
                            effect="the API server rejects a container whose limit is below its request",
                            fix=f"raise limits.{name} to at least {requests[name]}",
                        )
                    )
    return findings


LIMITS_COVER_REQUESTS = Rule(
    id="predictor-limits-cover-requests",
    title="every predictor container that requests cpu or memory sets a limit at least as large",
    applies=_is_isvc,
    check=_check_limits,
    nothing_to_check="no InferenceService in the manifests",
)


# --- Custom containers ------------------------------------------------------------------------


def _uses_containers(resource: Resource) -> bool:
    return _is_isvc(resource) and any(w.containers for w in workloads_of(resource))


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
    return _is_isvc(resource) and bool(_oci_mentions(resource))


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
        unset = [name for name in ("USER", "HOME") if not env.get(name) and name not in env]
        if unset:
            findings.append(
                Finding(
                    found=f"{workload.label} does not set {' and '.join(unset)}",
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


# --- Images -----------------------------------------------------------------------------------


def _check_images(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    for workload in workloads_of(resource):
        for container in workload.init_containers + workload.containers:
            image = container.image
            if not image.reference:
                continue
            if not image.digest_pinned:
                findings.append(
                    Finding(
                        found=f"{workload.label} container {container.name!r} image {image.reference!r} has no @sha256 digest",
                        effect="a tag can be moved: the cluster may run another build than the one that was verified",
                        fix=f"pin it: {image.reference.split('@')[0]}@sha256:<digest>",
                    )
                )
    return findings


IMAGES_PINNED = Rule(
    id="images-digest-pinned",
    title="every image is pinned by digest",
    applies=_has_workload,
    check=_check_images,
    nothing_to_check="no workload (InferenceService or Deployment) in the manifests",
)


# --- Same engine, same model on every path ----------------------------------------------------


def _serves_vllm(resource: Resource) -> bool:
    return bool(_vllm_containers(resource))


def _check_engine(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    expect = ctx.expect
    for workload, container in _vllm_containers(resource):
        version = container.image.version
        if version != expect.engine_version:
            findings.append(
                Finding(
                    found=f"{workload.label} runs vLLM image {container.image.reference!r} (version {version or 'unknown'})",
                    effect=(
                        f"the raw-vLLM control and the KServe path would not run the same engine "
                        f"(expected vLLM {expect.engine_version}), so comparing them measures the engine, not the serving layer"
                    ),
                    fix=f"use the vLLM {expect.engine_version} image on every path, or pass --engine-version",
                )
            )
        names = container.vllm.served_model_names
        if expect.served_model_name not in names:
            findings.append(
                Finding(
                    found=f"{workload.label} serves model name(s) {names}",
                    effect=(
                        f"clients asking for {expect.served_model_name!r} get 404 from this path; "
                        "the two paths are not serving the same model name"
                    ),
                    fix=f"pass --served-model-name={expect.served_model_name}",
                )
            )
    return findings


ENGINE_IDENTICAL = Rule(
    id="engine-identical",
    title="the raw and KServe paths run the same vLLM version and serve the same model name",
    applies=_serves_vllm,
    check=_check_engine,
    nothing_to_check="no vLLM container in the manifests",
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
                found=f"enableModelcar is false at {origin('enable_modelcar', 'true')}",
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


PLATFORM_CONFIG = Rule(
    id="kserve-platform-config",
    title="KServe runs in Standard mode with the Gateway API on a named gateway, Istio virtual hosts off and the modelcar on",
    applies=is_kserve_config,
    check=_check_platform,
    nothing_to_check="no inferenceservice-config ConfigMap or kserve-resources Helm values in the manifests",
)


# --- vLLM on CPU ------------------------------------------------------------------------------


def _runs_vllm_cpu(resource: Resource) -> bool:
    return any(c.is_cpu_build for _, c in _vllm_containers(resource))


def _check_vllm_cpu(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    for workload, container in _vllm_containers(resource):
        if not container.is_cpu_build:
            continue
        request = container.requests().get("cpu")
        cores = _quantity(request) if request is not None else None
        if cores is None or cores < VLLM_CPU_MIN_CORES:
            findings.append(
                Finding(
                    found=f"{workload.label} container {container.name!r} requests cpu={request!r}",
                    effect="vLLM on CPU needs at least 2 cores: one for the API server, the rest for its workers",
                    fix="request at least 2 cpu (and set a limit at least as large)",
                )
            )
        if container.env.get("VLLM_CPU_OMP_THREADS_BIND") == "all":
            findings.append(
                Finding(
                    found=f"{workload.label} sets VLLM_CPU_OMP_THREADS_BIND=all",
                    effect="worker threads are pinned to every core of the node, beyond the container's share, fighting the API server and neighbours",
                    fix="leave VLLM_CPU_OMP_THREADS_BIND unset (auto) or bind explicit cores",
                )
            )
    return findings


VLLM_CPU = Rule(
    id="vllm-cpu-resources",
    title="vLLM CPU containers request at least 2 cpu and never bind OpenMP threads to all cores",
    applies=_runs_vllm_cpu,
    check=_check_vllm_cpu,
    nothing_to_check="no vLLM CPU container in the manifests",
)


# --- Ports ------------------------------------------------------------------------------------


def _resolve_port(container: Container, port: object) -> int | None:
    if isinstance(port, int):
        return port
    if isinstance(port, str):
        return int(port) if port.isdigit() else container.named_port(port)
    return None


def _selecting_services(workload: Workload, ctx: RuleContext) -> list[Resource]:
    labels = as_mapping(as_mapping(workload.resource.spec.get("template")).get("metadata")).get("labels")
    labels = as_mapping(labels)
    services = []
    for service in ctx.manifests.of_kind("Service"):
        selector = as_mapping(service.spec.get("selector"))
        if selector and all(labels.get(k) == v for k, v in selector.items()):
            services.append(service)
    return services


def _check_ports(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    for workload, container in _vllm_containers(resource):
        port = container.vllm.port or VLLM_DEFAULT_PORT
        declared = container.container_ports
        where = f"{workload.label} container {container.name!r}"
        if declared and port not in declared:
            findings.append(
                Finding(
                    found=f"{where} runs vLLM on port {port} but declares containerPort(s) {declared}",
                    effect="traffic and probes go to a port nothing listens on",
                    fix=f"declare containerPort {port} (or pass --port={declared[0]})",
                )
            )
        if workload.is_kserve and not declared and port != KSERVE_DEFAULT_PORT:
            findings.append(
                Finding(
                    found=f"{where} runs vLLM on port {port} and declares no containerPort",
                    effect=f"KServe points the predictor Service and probes at {KSERVE_DEFAULT_PORT}",
                    fix=f"pass --port={KSERVE_DEFAULT_PORT} or declare containerPort {port}",
                )
            )
        for probe, probe_port in container.probe_ports().items():
            resolved = _resolve_port(container, probe_port)
            if resolved != port:
                findings.append(
                    Finding(
                        found=f"{where} {probe} targets port {probe_port!r} while vLLM listens on {port}",
                        effect="the probe fails: the pod never becomes Ready, or is restarted in a loop",
                        fix=f"point the {probe} at port {port}",
                    )
                )
        if not workload.is_kserve:
            for service in _selecting_services(workload, ctx):
                for service_port in as_list(service.spec.get("ports")):
                    target = as_mapping(service_port).get("targetPort", as_mapping(service_port).get("port"))
                    if _resolve_port(container, target) != port:
                        findings.append(
                            Finding(
                                found=f"{service.ident} sends port {as_mapping(service_port).get('port')} to {target!r}, vLLM listens on {port}",
                                effect="requests through the Service are refused",
                                fix=f"set targetPort to {port}",
                            )
                        )
    return findings


VLLM_PORT = Rule(
    id="vllm-port-matches",
    title="the vLLM --port matches the declared containerPort, the probes and the Service",
    applies=_serves_vllm,
    check=_check_ports,
    nothing_to_check="no vLLM container in the manifests",
)


# --- GPUs -------------------------------------------------------------------------------------


def _runs_vllm_gpu(resource: Resource) -> bool:
    return any(not c.is_cpu_build for _, c in _vllm_containers(resource))


def _check_gpu(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    checked: set[str] = set()
    for workload, container in _vllm_containers(resource):
        if container.is_cpu_build:
            continue
        where = f"{workload.label} container {container.name!r}"
        if GPU_RESOURCE not in container.limits():
            findings.append(
                Finding(
                    found=f"{where} runs a GPU vLLM image without limits[{GPU_RESOURCE!r}]",
                    effect="the pod lands on a node without a GPU and vLLM fails to start",
                    fix=f"set resources.limits[{GPU_RESOURCE!r}] (extended resources are requested through limits)",
                )
            )
        if workload.label in checked:
            continue
        checked.add(workload.label)
        gpus = workload.gpus
        if gpus and 2 * gpus > ctx.expect.gpu_slots and workload.strategy_type != "Recreate":
            findings.append(
                Finding(
                    found=(
                        f"{workload.label} uses the {workload.strategy_type} strategy with {gpus} GPU(s) "
                        f"per pod on {ctx.expect.gpu_slots} GPU slot(s)"
                    ),
                    effect="a rolling update needs a second pod's GPUs at once: the new pod stays Pending and the rollout never finishes",
                    fix=(
                        "set deploymentStrategy.type: Recreate"
                        if workload.is_kserve
                        else "set spec.strategy.type: Recreate"
                    ),
                )
            )
    return findings


GPU_WORKLOADS = Rule(
    id="gpu-workloads",
    title="GPU workloads request nvidia.com/gpu and use Recreate where only one GPU slot exists",
    applies=_runs_vllm_gpu,
    check=_check_gpu,
    nothing_to_check="no GPU vLLM workload in the manifests",
)


# --- Canary split -----------------------------------------------------------------------------


def _is_split_route(resource: Resource) -> bool:
    if resource.kind != "HTTPRoute":
        return False
    return any(len(as_list(as_mapping(rule).get("backendRefs"))) > 1 for rule in as_list(resource.spec.get("rules")))


def _declares_canary(resource: Resource) -> bool:
    if _is_isvc(resource):
        return any("canaryTrafficPercent" in w.pod for w in workloads_of(resource))
    return _is_split_route(resource)


def _check_canary(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    config = ctx.kserve_config
    if _is_isvc(resource):
        mode = as_mapping(resource.metadata.get("annotations")).get("serving.kserve.io/deploymentMode")
        standard = mode in STANDARD_MODES if mode else (config is None or config.standard_mode)
        if standard:
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
        receiving = [b.get("name") for b, w in zip(backends, weights) if w > 0]
        if len(receiving) < 2:
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
        if not any(p.get("name") == gateway_name and p.get("namespace", gateway_ns) == gateway_ns for p in parents):
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
    title="a canary is a weighted split that Standard mode honours, with traffic to every revision",
    applies=_declares_canary,
    check=_check_canary,
    nothing_to_check="no canary (canaryTrafficPercent or a weighted HTTPRoute) in the manifests",
)


ALL_RULES: tuple[Rule, ...] = (
    LIMITS_COVER_REQUESTS,
    CUSTOM_CONTAINER,
    MODELCAR,
    IMAGES_PINNED,
    ENGINE_IDENTICAL,
    PLATFORM_CONFIG,
    VLLM_CPU,
    VLLM_PORT,
    GPU_WORKLOADS,
    CANARY,
)

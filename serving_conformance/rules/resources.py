"""KServe fills missing limits with its defaults; vLLM on CPU needs two cores and its own threads."""

from __future__ import annotations

from decimal import Decimal

from serving_conformance.base.quantity import parse_quantity
from serving_conformance.manifests.model import Resource
from serving_conformance.manifests.workloads import RUNTIME_KINDS, workloads_of
from serving_conformance.rules.common import is_isvc, quantity, vllm_containers
from serving_conformance.rules.findings import Finding, Rule, RuleContext

# inferenceservice-config `inferenceService.resource` as shipped by KServe v0.19.
KSERVE_DEFAULT_LIMITS = {"cpu": "1", "memory": "2Gi"}
VLLM_CPU_MIN_CORES = Decimal(2)


# --- KServe fills a missing limit with its default, which can be lower than the request ---------


def _check_limits(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    for workload in workloads_of(resource):
        for container in workload.containers:
            requests, limits = container.requests(), container.limits()
            for name in ("cpu", "memory"):
                if name not in requests:
                    continue
                request = quantity(requests[name])
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
                limit = quantity(limits[name])
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
    applies=is_isvc,
    check=_check_limits,
    nothing_to_check="no InferenceService in the manifests",
)


# --- vLLM on CPU ------------------------------------------------------------------------------


def _runs_vllm_cpu(resource: Resource) -> bool:
    return any(c.is_cpu_build for _, c in vllm_containers(resource))


def _check_vllm_cpu(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    for workload, container in vllm_containers(resource):
        if not container.is_cpu_build:
            continue
        request = container.requests().get("cpu")
        if request is None and resource.kind in RUNTIME_KINDS:
            continue  # a runtime is a template: each InferenceService using it gives the request
        cores = quantity(request) if request is not None else None
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

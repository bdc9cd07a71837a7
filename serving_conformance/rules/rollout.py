"""What the API server would refuse in a workload as rendered: a strategy it rejects, a container
without an image. Both are typical of kustomize patches on custom resources (InferenceServices have
no merge keys: a strategic-merge patch replaces whole lists and merges maps)."""

from __future__ import annotations

from serving_conformance.manifests.model import Resource
from serving_conformance.manifests.workloads import as_mapping, workloads_of
from serving_conformance.rules.common import has_workload
from serving_conformance.rules.findings import Finding, Rule, RuleContext


def _rendered(resource: Resource) -> str:
    return f" as rendered by {resource.via}" if resource.via is not None else ""


def _check_strategy(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    for workload in workloads_of(resource):
        strategy = workload.strategy
        if not strategy:
            continue
        field = f"{workload.label} {'deploymentStrategy' if workload.is_kserve else 'spec.strategy'}"
        kind = str(strategy.get("type") or "RollingUpdate")
        if kind not in ("Recreate", "RollingUpdate"):
            findings.append(Finding(
                found=f"{field}.type is {kind!r}{_rendered(resource)}",
                effect="the API server rejects the Deployment: the type is Recreate or RollingUpdate",
                fix="set type: Recreate or RollingUpdate",
            ))
        elif kind == "Recreate" and "rollingUpdate" in strategy:
            findings.append(Finding(
                found=f"{field} is Recreate and still carries rollingUpdate {dict(as_mapping(strategy['rollingUpdate']))}"
                      f"{_rendered(resource)}",
                effect="the API server rejects the Deployment (spec.strategy.rollingUpdate: Forbidden when type is "
                       "Recreate): nothing rolls out. A patch on an InferenceService merges maps, so switching to "
                       "Recreate keeps the base's rollingUpdate",
                fix="replace the whole deploymentStrategy (a JSON 6902 replace, or $patch: replace), leaving no rollingUpdate",
            ))
        elif kind == "RollingUpdate":
            surge, unavailable = workload.rollout_bounds()
            if surge == 0 and unavailable == 0:
                findings.append(Finding(
                    found=f"{field} has maxSurge and maxUnavailable both 0{_rendered(resource)}",
                    effect="the API server rejects the Deployment: a rollout could never make progress",
                    fix="allow one of them (maxUnavailable: 1 where GPUs are short)",
                ))
    return findings


STRATEGY_VALID = Rule(
    id="deployment-strategy-valid",
    title="every workload's rollout strategy, as rendered, is one the API server accepts",
    applies=has_workload,
    check=_check_strategy,
    nothing_to_check="no workload in the manifests",
)


def _needs_images(resource: Resource) -> bool:
    # An LLMInferenceService's images may come from KServe's presets; a predictor's `model` form
    # takes its container from the runtime.
    return has_workload(resource) and resource.kind != "LLMInferenceService"


def _check_images_present(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    for workload in workloads_of(resource):
        # A `model` predictor's serving container comes from its runtime (and `containers` is then
        # empty); its init containers are passed through as written and need their images.
        for container in workload.init_containers + workload.containers:
            if container.image.reference:
                continue
            findings.append(Finding(
                found=f"{workload.label} container {container.name!r} names no image{_rendered(resource)} "
                      f"(it has only {sorted(container.body)})",
                effect="the API server rejects the pod template (containers[].image is required): the workload never "
                       "runs. On an InferenceService a strategic-merge patch replaces the whole containers list",
                fix="patch the container with a JSON 6902 patch (one field), or repeat the full container in the patch",
            ))
    return findings


CONTAINERS_COMPLETE = Rule(
    id="rendered-workloads-complete",
    title="every container of every workload, as rendered, names its image",
    applies=_needs_images,
    check=_check_images_present,
    nothing_to_check="no workload in the manifests",
)


# --- traffic reaches a vLLM only once it has loaded its model -----------------------------------

SERVING_KINDS = ("InferenceService", "Deployment", "StatefulSet")


def _serves_vllm(resource: Resource) -> bool:
    return resource.kind in SERVING_KINDS and any(w.vllm_containers for w in workloads_of(resource))


def _check_readiness(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    for workload in workloads_of(resource):
        for container in workload.vllm_containers:
            if not as_mapping(container.body.get("readinessProbe")):
                findings.append(Finding(
                    found=f"{workload.label} container {container.name!r} runs vLLM with no readinessProbe",
                    effect="the pod is Ready as soon as the container starts: its Service and the gateway send "
                           "requests to a vLLM still loading its model (refused, 502s in every rollout)",
                    fix="add a readinessProbe: httpGet on vLLM's /health at its port",
                ))
    return findings


VLLM_READINESS = Rule(
    id="vllm-readiness-probe",
    title="every vLLM serving container has a readiness probe, so traffic waits for the model",
    applies=_serves_vllm,
    check=_check_readiness,
    nothing_to_check="no InferenceService or Deployment runs vLLM",
)

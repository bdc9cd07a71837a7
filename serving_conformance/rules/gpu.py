"""GPU workloads request GPUs, and roll out within the GPU slots there are."""

from __future__ import annotations

from serving_conformance.manifests.model import Resource
from serving_conformance.manifests.workloads import GPU_RESOURCE, RUNTIME_KINDS
from serving_conformance.rules.common import vllm_containers
from serving_conformance.rules.findings import Finding, Rule, RuleContext


def _runs_vllm_gpu(resource: Resource) -> bool:
    return any(c.accelerator == "cuda" for _, c in vllm_containers(resource))


def _check_gpu(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    checked: set[str] = set()
    for workload, container in vllm_containers(resource):
        if container.accelerator != "cuda":
            continue
        where = f"{workload.label} container {container.name!r}"
        if container.claims_devices:
            continue  # its GPUs come from a ResourceClaim (DRA): no count to check against the slots
        if container.gpu_limit is None and resource.kind not in RUNTIME_KINDS:
            findings.append(
                Finding(
                    found=f"{where} runs a GPU vLLM image without limits[{GPU_RESOURCE!r}]",
                    effect="the pod lands on a node without a GPU and vLLM fails to start",
                    fix=f"set resources.limits[{GPU_RESOURCE!r}], or a MIG slice's resource (extended resources are "
                        "requested through limits)",
                )
            )
        if workload.label in checked:
            continue
        checked.add(workload.label)
        findings += _rollout(workload, ctx.expect.gpu_slots)
    return findings


def _rollout(workload, slots: int) -> list[Finding]:
    """Whether the workload's pods, and a rollout of them, fit in the GPU slots there are."""
    gpus, replicas = workload.gpus, workload.replicas
    if not gpus:
        return []
    field = "deploymentStrategy" if workload.is_kserve else "spec.strategy"
    if replicas * gpus > slots:
        return [Finding(
            found=f"{workload.label} runs {replicas} replica(s) with {gpus} GPU(s) each on {slots} GPU slot(s)",
            effect="not every replica can be scheduled: some stay Pending for good",
            fix=f"run at most {slots // gpus} replica(s), or pass the real --gpu-slots",
        )]
    if workload.strategy_type == "Recreate":
        return []
    surge, unavailable = workload.rollout_bounds()
    peak = (replicas + surge) * gpus
    if unavailable == 0 and peak > slots:
        return [Finding(
            found=(f"{workload.label} rolls out with {workload.strategy_type} (maxSurge {surge}, maxUnavailable 0): "
                   f"{replicas} replica(s) plus {surge} surge pod(s) need {peak} GPU(s) at once on {slots} GPU slot(s)"),
            effect="the surge pod stays Pending and no old pod may stop first: the rollout never finishes",
            fix=f"set {field}.type: Recreate, or rollingUpdate.maxUnavailable of at least 1 (maxSurge 0)",
        )]
    return []


GPU_WORKLOADS = Rule(
    id="gpu-workloads",
    title="GPU workloads request nvidia.com/gpu and their replicas and rollouts fit in the GPU slots",
    applies=_runs_vllm_gpu,
    check=_check_gpu,
    nothing_to_check="no GPU vLLM workload in the manifests",
)

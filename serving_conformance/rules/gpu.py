"""GPU workloads request GPUs, and roll out within the GPU slots there are."""

from __future__ import annotations

from serving_conformance.manifests.load import Resource
from serving_conformance.manifests.workloads import GPU_RESOURCE
from serving_conformance.rules.common import vllm_containers
from serving_conformance.rules.findings import Finding, Rule, RuleContext

# --- GPUs -------------------------------------------------------------------------------------


def _runs_vllm_gpu(resource: Resource) -> bool:
    return any(not c.is_cpu_build for _, c in vllm_containers(resource))


def _check_gpu(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    checked: set[str] = set()
    for workload, container in vllm_containers(resource):
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

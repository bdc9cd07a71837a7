"""Standard mode never scales a predictor to zero.

KServe v0.19 in Standard mode makes a HorizontalPodAutoscaler for each component with a
`minReplicas` of at least 1: `createHPA` raises anything below `DefaultMinReplicas` (1) to 1
(pkg/controller/v1beta1/inferenceservice/reconcilers/hpa/hpa_reconciler.go). `minReplicas: 0`
therefore still runs a pod, and a runbook promising no idle cost is wrong. With
`serving.kserve.io/autoscalerClass: none` there is no HPA and the Deployment gets `minReplicas`
replicas: 0 means nothing ever serves.
"""

from __future__ import annotations

from serving_conformance.manifests.model import Resource
from serving_conformance.manifests.workloads import as_mapping, workloads_of
from serving_conformance.rules.common import is_isvc, standard_mode
from serving_conformance.rules.findings import Finding, Rule, RuleContext

AUTOSCALER_CLASS = "serving.kserve.io/autoscalerClass"


def _sets_min_replicas(resource: Resource) -> bool:
    return is_isvc(resource) and any("minReplicas" in w.pod for w in workloads_of(resource))


def _check(resource: Resource, ctx: RuleContext) -> list[Finding]:
    if not standard_mode(resource, ctx.kserve_config):
        return []
    autoscaler = str(as_mapping(resource.metadata.get("annotations")).get(AUTOSCALER_CLASS) or "hpa")
    findings = []
    for workload in workloads_of(resource):
        value = workload.pod.get("minReplicas")
        if value is None or str(value) not in ("0",):
            continue
        if autoscaler == "hpa":
            findings.append(Finding(
                found=f"{workload.label} sets minReplicas: 0 in Standard mode with KServe's HPA",
                effect="KServe's HPA raises minReplicas below 1 to 1: the predictor never scales to zero, "
                       "so at least one pod (and its GPU) runs while idle",
                fix="set minReplicas: 1 and budget the idle pod, or scale to zero where it exists "
                    "(Knative mode, or autoscalerClass keda with a scaler that reaches 0)",
            ))
        elif autoscaler == "none":
            findings.append(Finding(
                found=f"{workload.label} sets minReplicas: 0 with {AUTOSCALER_CLASS}: none",
                effect="without an autoscaler KServe gives the Deployment minReplicas replicas: 0 pods, and the "
                       "InferenceService never becomes Ready",
                fix="set minReplicas to the replicas wanted (at least 1)",
            ))
    return findings


STANDARD_NO_SCALE_TO_ZERO = Rule(
    id="standard-mode-no-scale-to-zero",
    title="a Standard-mode predictor never relies on scaling to zero: minReplicas is at least 1",
    applies=_sets_min_replicas,
    check=_check,
    nothing_to_check="no InferenceService sets minReplicas in the manifests",
)

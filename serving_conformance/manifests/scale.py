"""Workloads the platform scales to nothing (`replicas: 0`, `minReplicas: 0`), often by an
autoscaler the cluster under test does not run (a paused KEDA ScaledObject, scaling by hand): the
suite deploys them with one replica, so that their checks can run, and says so on every result
that involves them. Applied to what is deployed, never to what is judged statically.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from serving_conformance.base.features import Substitution
from serving_conformance.manifests.model import ManifestSet, Resource
from serving_conformance.manifests.workloads import KSERVE_COMPONENTS, POD_TEMPLATE_KINDS, as_mapping

# What scales workloads outside the Kubernetes control plane: named on the stand-in when present.
AUTOSCALER_KINDS = {"ScaledObject": "KEDA", "HorizontalPodAutoscaler": "HPA", "VerticalPodAutoscaler": "VPA"}


@dataclass(frozen=True)
class Scaled:
    """One workload deployed with one replica where the manifests declare none."""

    workload: str  # its ident
    declared: str  # e.g. "replicas: 0", "predictor.minReplicas: 0"
    autoscalers: tuple[str, ...] = ()

    def substitution(self) -> Substitution:
        by = f", scaled by {', '.join(self.autoscalers)}" if self.autoscalers else ""
        return Substitution("replicas", f"{self.workload} as declared ({self.declared}{by})",
                            "1 replica, deployed so that its checks can run", (self.workload,))


def _zero(value: Any) -> bool:
    return value is not None and not isinstance(value, bool) and str(value).strip() == "0"


def scale_up(body: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The object with one replica where it declares none (a copy where anything changes), and
    the declarations changed."""
    kind = body.get("kind")
    spec = as_mapping(body.get("spec"))
    if kind in POD_TEMPLATE_KINDS and _zero(spec.get("replicas")):
        result = copy.deepcopy(dict(body))
        result["spec"]["replicas"] = 1
        return result, ["replicas: 0"]
    if kind == "InferenceService":
        zero = [c for c in KSERVE_COMPONENTS if _zero(as_mapping(spec.get(c)).get("minReplicas"))]
        if zero:
            result = copy.deepcopy(dict(body))
            for component in zero:
                result["spec"][component]["minReplicas"] = 1
            return result, [f"{c}.minReplicas: 0" for c in zero]
    return dict(body), []


def autoscalers_of(resource: Resource, manifests: ManifestSet) -> list[str]:
    """The autoscalers the manifests point at this workload (`scaleTargetRef`)."""
    found = []
    for kind, owner in AUTOSCALER_KINDS.items():
        for scaler in manifests.of_kind(kind):
            target = as_mapping(scaler.spec.get("scaleTargetRef") or as_mapping(scaler.spec.get("targetRef")))
            if str(target.get("name")) == resource.name and target.get("kind", "Deployment") == resource.kind \
                    and scaler.namespace == resource.namespace:
                paused = as_mapping(scaler.metadata.get("annotations")).get("autoscaling.keda.sh/paused-replicas")
                note = f" paused at {paused}" if paused is not None else ""
                found.append(f"{owner} {kind} {scaler.name}{note}")
    return found


def scaled_workloads(resources: Iterable[Resource], manifests: ManifestSet) -> list[Scaled]:
    """Every workload of `resources` the deployer scales up, with what scales it in the platform."""
    found = []
    for resource in resources:
        _, changes = scale_up(resource.body)
        if changes:
            found.append(Scaled(resource.ident, ", ".join(changes), tuple(autoscalers_of(resource, manifests))))
    return found

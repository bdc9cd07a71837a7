"""What a place to run offers, and what stands in there for what the platform runs.

Behaviours require features; providers (and the local engine) advertise them; one gate decides
run or skip from the two. A `Substitution` names a difference from the platform (simulated GPUs,
a tiny model, another gateway, a locally built engine): its kind (`StandIn`) is one of the
components a behaviour's result rests on, and it qualifies exactly the results that rest on that
component (and, when it is about certain objects, only those that involve them): the report lists
it, and every result it touches says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Feature(StrEnum):
    """What a cluster offers; a behaviour requires some, and runs only where all are offered."""

    # Pods run a real vLLM and answer requests.
    SERVING = "serving"
    # A Gateway API implementation accepts routes and forwards traffic.
    GATEWAY = "gateway"
    # Some node has nvidia.com/gpu allocatable (real or simulated: see the substitutions).
    GPU = "gpu"
    # Istio's VirtualService API is served, so "no VirtualService" could be violated.
    ISTIO_API = "istio-api"
    # A real kubelet runs the pods: probes, limits, restarts, shared process namespaces.
    KUBELET = "kubelet"
    # Pod and Service addresses are reachable from where the suite runs (no port-forward needed).
    POD_NETWORK = "pod-network"
    # What serves is the vLLM version the design names (not a stand-in build of another version).
    ENGINE_VERSION = "engine-version"


class StandIn(StrEnum):
    """The components a behaviour's result rests on, each of which a place may stand in for."""

    # KServe's controller and its webhooks (defaulting, validation, the pod mutator).
    KSERVE_MANAGER = "kserve-manager"
    # What runs pods: probes, limits, restarts, readiness.
    KUBELET = "kubelet"
    # The vLLM each container names.
    ENGINE = "engine"
    # The model each container names (hub model, volume, modelcar).
    MODEL = "model"
    # The platform's Gateway API implementation.
    GATEWAY = "gateway"
    # Nodes with GPUs (and the node pool labels GPU workloads select).
    GPU = "gpu"
    # An image (or oci:// model) deployed as another than the manifests name.
    IMAGE = "image"
    # A Secret the suite created where the platform's secret store would write it.
    SECRETS = "secrets"
    # A request lowered to fit a small cluster's nodes.
    REQUESTS = "requests"
    # A replica count raised from nothing, so that checks can run.
    REPLICAS = "replicas"
    # The cluster's own pod network.
    POD_NETWORK = "pod-network"


@dataclass(frozen=True)
class Substitution:
    """Something that differs here from what the platform runs."""

    subject: str  # a StandIn: the component it stands in for
    platform: str  # what the platform under test runs
    here: str  # what stands in for it in this run
    # The objects (idents) it is about: then it qualifies only the results that involve one of
    # them (a replica count changed on one workload says nothing of the others).
    scope: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        StandIn(self.subject)  # a kind no behaviour could name would qualify nothing, silently

    def sentence(self) -> str:
        return f"{self.subject}: {self.here} stands in for {self.platform}"

    def applies_to(self, rests_on: set[str] | frozenset[str], involved: frozenset[str] | set[str] = frozenset()) -> bool:
        """Whether a result that rests on these components, about these objects, rests on this."""
        if self.subject not in rests_on:
            return False
        return not self.scope or bool(set(self.scope) & set(involved))

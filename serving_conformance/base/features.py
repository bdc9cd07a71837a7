"""What a place to run offers, and what stands in there for what the platform runs.

Behaviours require features; providers (and the local engine) advertise them; one gate decides
run or skip from the two. A `Substitution` names a difference from the platform (simulated GPUs,
a tiny model, another gateway, a locally built engine) and the features whose results it
qualifies: the report lists it, and every affected result says so.
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


@dataclass(frozen=True)
class Substitution:
    """Something that differs here from what the platform runs, and the features it affects."""

    subject: str  # e.g. "gpu", "engine", "model", "gateway"
    platform: str  # what the platform under test runs
    here: str  # what stands in for it in this run
    affects: tuple[str, ...]  # Feature values whose results it qualifies
    # The objects (idents) it is about: then it qualifies every result that involves one of them,
    # and no other (a replica count changed on one workload says nothing of the others).
    scope: tuple[str, ...] = ()

    def sentence(self) -> str:
        return f"{self.subject}: {self.here} stands in for {self.platform}"

    def applies_to(self, required: set[str] | frozenset[str], involved: frozenset[str] | set[str] = frozenset()) -> bool:
        if self.scope:
            return bool(set(self.scope) & set(involved))
        return bool(set(self.affects) & set(required))

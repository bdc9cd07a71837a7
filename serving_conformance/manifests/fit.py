"""Requests fitted to a small cluster's nodes: a pod that asks for more than a node of this cluster
can allocate (2 CPUs on a 2-core machine's kind worker, plus the 10m of KServe's modelcar) would
stay Pending, so its serving container asks for less, by exactly the excess. Limits are never
changed (what the kubelet enforces and what the checks compare stays the manifest's); requests
only go down. Applied to what is deployed, never to what is judged statically; every fitted
request is a stand-in the report lists.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from serving_conformance.base.features import Substitution
from serving_conformance.base.quantity import QuantityError, parse_quantity
from serving_conformance.manifests.images import OCI
from serving_conformance.manifests.model import Resource
from serving_conformance.manifests.workloads import Container, Workload, workloads_of

# Requests fitted: the ones the scheduler counts against every node (GPUs are simulated as many as needed).
FITTED = ("cpu", "memory")


@dataclass(frozen=True)
class Room:
    """What one pod may request on this cluster: the allocatable of the smallest node that runs
    workloads (`where` names it), and what KServe adds beside an oci:// model (its modelcar sidecar)."""

    allocatable: Mapping[str, str]
    where: str
    modelcar: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"allocatable": dict(self.allocatable), "where": self.where, "modelcar": dict(self.modelcar)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Room | None:
        if not data:
            return None
        return cls(dict(data.get("allocatable") or {}), str(data.get("where") or ""), dict(data.get("modelcar") or {}))


@dataclass(frozen=True)
class Fitted:
    """One request lowered: `declared` in the manifests, `fitted` as deployed."""

    workload: str
    container: str
    resource: str
    declared: str
    fitted: str
    room: str  # why: the node's allocatable and what is added beside the container
    ident: str = ""  # the object it belongs to: the stand-in qualifies its results only

    def substitution(self) -> Substitution:
        return Substitution(
            "requests", f"{self.workload} {self.container} requests {self.resource}={self.declared}",
            f"{self.resource}={self.fitted}, so the pod fits {self.room} (limits as declared)", (self.ident,))


def _quantity(value: Any) -> Decimal | None:
    try:
        return parse_quantity(value) if value is not None else None
    except QuantityError:
        return None


def _format(resource: str, amount: Decimal) -> str:
    """Rounded down, so the fitted request never exceeds the room."""
    if resource == "cpu":
        return f"{int(amount * 1000)}m"
    return f"{int(amount / 2**20)}Mi"


def _request(container: Container, resource: str) -> Decimal:
    """What the scheduler counts: the request, else the limit (which then defaults the request)."""
    value = container.requests().get(resource, container.limits().get(resource))
    return _quantity(value) or Decimal(0)


def _added(workload: Workload, room: Room, resource: str) -> Decimal:
    uri = workload.storage_uri
    if workload.is_kserve and uri and uri.startswith(OCI):
        return _quantity(room.modelcar.get(resource)) or Decimal(0)
    return Decimal(0)


def _fit_workload(workload: Workload, room: Room) -> list[Fitted]:
    changes = []
    containers = workload.containers
    for resource in FITTED:
        allocatable = _quantity(room.allocatable.get(resource))
        if allocatable is None or not containers:
            continue
        added = _added(workload, room, resource)
        excess = sum((_request(c, resource) for c in containers), Decimal(0)) + added - allocatable
        if excess <= 0:
            continue
        target = workload.serving_container or max(containers, key=lambda c: _request(c, resource))
        declared = _request(target, resource)
        if declared - excess <= 0:
            continue  # no request fits: the pod stays Pending and its test says why
        fitted = _format(resource, declared - excess)
        body = target.body
        assert isinstance(body, MutableMapping)  # a copy made by fit()
        resources = body.setdefault("resources", {})
        original = str(target.requests().get(resource, target.limits().get(resource)))
        resources.setdefault("requests", {})[resource] = fitted
        why = f"{room.where}'s allocatable {resource}={room.allocatable[resource]}"
        if added:
            why += f" beside KServe's modelcar ({resource}={room.modelcar[resource]})"
        changes.append(Fitted(workload.label, target.name, resource, original, fitted, why, workload.resource.ident))
    return changes


def fit(body: Mapping[str, Any], room: Room | None) -> tuple[dict[str, Any], list[Fitted]]:
    """The object with each workload's requests fitted to the room (a copy where any may change),
    and what changed."""
    if room is None:
        return dict(body), []
    result = copy.deepcopy(dict(body))
    changes: list[Fitted] = []
    for workload in workloads_of(Resource(result, Path("-"), 0)):
        changes += _fit_workload(workload, room)
    return result, changes


def fitted_requests(resources: Iterable[Resource], room: Room | None) -> list[Fitted]:
    """Every request the manifests' workloads will be deployed with lowered."""
    return [change for resource in resources for change in fit(resource.body, room)[1]]


def modelcar_requests(storage_initializer: Mapping[str, Any]) -> dict[str, str]:
    """What KServe's modelcar sidecar requests, from the `storageInitializer` setting of its
    inferenceservice-config (empty where the modelcar is off)."""
    if not storage_initializer.get("enableModelcar"):
        return {}
    found = {"cpu": storage_initializer.get("cpuModelcar"), "memory": storage_initializer.get("memoryModelcar")}
    return {k: str(v) for k, v in found.items() if v is not None and _quantity(v) is not None}


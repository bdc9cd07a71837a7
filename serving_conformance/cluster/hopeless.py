"""Whether what a wait awaits can still happen: a workload scaled to nothing, a pod no node can
ever hold, an image that cannot be pulled, a container that keeps crashing, pods the API server
refuses. A wait that checks these stops at once with the reason, instead of outlasting the
workload's own start-up when nothing can come.

Pure functions over the objects as the API server returns them; only states that do not resolve
by waiting count (a pod Pending for room another pod is about to free does not).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from serving_conformance.base.quantity import QuantityError, parse_quantity
from serving_conformance.cluster.conditions import condition

# Waiting reasons that no amount of waiting resolves (the kubelet has already retried the pull).
IMAGE_REASONS = ("ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
# A container restarted this often while the wait runs is crashing, not starting.
CRASH_RESTARTS = 3
# Messages of a refused pod creation (a Deployment's ReplicaFailure) that a retry repeats.
REFUSED = ("denied the request", "is invalid", "is forbidden", "forbidden:")
SCHEDULED_RESOURCES = ("cpu", "memory", "nvidia.com/gpu")

Obj = Mapping[str, Any]


def _quantity(value: Any) -> Decimal:
    try:
        return parse_quantity(value) if value is not None else Decimal(0)
    except QuantityError:
        return Decimal(0)


def pod_requests(pod: Obj) -> dict[str, Decimal]:
    """What the scheduler counts for a pod: its containers' requests summed (a limit stands in for
    a missing request), or its largest init container's, whichever is more."""
    spec = pod.get("spec") or {}

    def of(container: Obj, resource: str) -> Decimal:
        resources = container.get("resources") or {}
        return _quantity((resources.get("requests") or {}).get(resource, (resources.get("limits") or {}).get(resource)))

    total = {}
    for resource in SCHEDULED_RESOURCES:
        running = sum((of(c, resource) for c in spec.get("containers") or []), Decimal(0))
        init = max((of(c, resource) for c in spec.get("initContainers") or []), default=Decimal(0))
        total[resource] = max(running, init)
    return total


def never_fits(pod: Obj, nodes: Iterable[Obj]) -> str | None:
    """Why no node of the cluster can ever hold this pod (its requests beyond every node's
    allocatable), or None."""
    nodes = list(nodes)
    if not nodes:
        return None
    wanted = pod_requests(pod)
    for resource, amount in wanted.items():
        if amount <= 0:
            continue
        most = max(_quantity(((n.get("status") or {}).get("allocatable") or {}).get(resource)) for n in nodes)
        if amount > most:
            return (f"it requests {resource}={amount.normalize()} and the largest node allocates "
                    f"{resource}={most.normalize()}: no node of this cluster can ever hold it")
    return None


def _pod_name(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def stuck_pod(pod: Obj, nodes: Iterable[Obj]) -> str | None:
    """Why this pod will not become Ready by waiting, or None."""
    status = pod.get("status") or {}
    statuses = list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])
    images = {c.get("name"): c.get("image") for c in (pod.get("spec") or {}).get("containers") or []}
    images.update({c.get("name"): c.get("image") for c in (pod.get("spec") or {}).get("initContainers") or []})
    for container in statuses:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason, message = waiting.get("reason"), waiting.get("message") or ""
        if reason in IMAGE_REASONS:
            return (f"pod {_pod_name(pod)}: container {container.get('name')} cannot get its image "
                    f"{images.get(container.get('name'))!r}: {reason} {message}".rstrip())
        if reason == "CrashLoopBackOff" and int(container.get("restartCount") or 0) >= CRASH_RESTARTS:
            last = ((container.get("lastState") or {}).get("terminated") or {})
            exit_text = f"; last exit code {last.get('exitCode')} ({last.get('reason')})" if last else ""
            return (f"pod {_pod_name(pod)}: container {container.get('name')} keeps crashing "
                    f"(restarted {container.get('restartCount')} times{exit_text})")
    scheduled = condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        why = never_fits(pod, nodes)
        if why is not None:
            return f"pod {_pod_name(pod)} cannot be scheduled: {why} ({scheduled.get('message') or ''})"
    return None


def refused_pods(deployment: Obj | None) -> str | None:
    """A Deployment whose pods the API server (or an admission webhook) refuses to create."""
    failure = condition(deployment, "ReplicaFailure") if deployment is not None else None
    if failure is None or failure.get("status") != "True":
        return None
    message = str(failure.get("message") or "")
    if any(words in message for words in REFUSED):
        name = (deployment.get("metadata") or {}).get("name")
        return f"Deployment {name}: its pods are refused: {message}"
    return None


def scaled_to_nothing(deployment: Obj | None) -> str | None:
    spec = (deployment or {}).get("spec") or {}
    if deployment is not None and spec.get("replicas") == 0:
        name = (deployment.get("metadata") or {}).get("name")
        return f"Deployment {name} has replicas: 0 (scaled to nothing): no pod will come"
    return None

"""Reading Kubernetes status: conditions, availability and one-line descriptions for failures.

Every "is it ready yet" in the suite is one of these functions, so waits, the installer and the
conformance tests read status the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Obj = Mapping[str, Any] | None


def condition(obj: Obj, kind: str) -> Mapping[str, Any] | None:
    for entry in ((obj or {}).get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return entry
    return None


def is_true(obj: Obj, kind: str) -> bool:
    entry = condition(obj, kind)
    return bool(entry) and entry.get("status") == "True"


def allocatable_count(node: Obj, resource: str) -> int:
    """How many of a countable resource (GPUs) a node can allocate; 0 where it reports none."""
    value = (((node or {}).get("status") or {}).get("allocatable") or {}).get(resource, "0")
    try:
        return int(str(value))
    except ValueError:
        return 0


def describe_conditions(obj: Obj) -> str:
    entries = ((obj or {}).get("status") or {}).get("conditions") or []
    if not entries:
        return "no conditions reported"
    return "; ".join(
        f"{c.get('type')}={c.get('status')}" + (f" ({c.get('reason')}: {c.get('message')})" if c.get("status") != "True" else "")
        for c in entries
    )


def identity(obj: Obj) -> tuple[Any, Any]:
    """Which object, at which spec: changed by a re-create or a spec change, not by status."""
    meta = (obj or {}).get("metadata") or {}
    return meta.get("uid"), meta.get("generation")


def generation(obj: Obj) -> int:
    return int(((obj or {}).get("metadata") or {}).get("generation") or 0)


def deployment_available(obj: Obj) -> bool:
    """Rolled out: the controller saw this generation, every replica is updated, and it is Available."""
    if not obj:
        return False
    status = obj.get("status") or {}
    generation_seen = status.get("observedGeneration", 0) >= generation(obj)
    updated = status.get("updatedReplicas", 0) >= ((obj.get("spec") or {}).get("replicas") or 1)
    return generation_seen and updated and is_true(obj, "Available")


def rolled_out_after(previous_generation: int):
    """A condition: the Deployment has changed since `previous_generation` and is rolled out."""
    return lambda obj: bool(obj) and generation(obj) > previous_generation and deployment_available(obj)


def crd_established(obj: Obj) -> bool:
    return is_true(obj, "Established")


def has_route_parents(obj: Obj) -> bool:
    return bool(((obj or {}).get("status") or {}).get("parents"))


def describe_pod(pod: Mapping[str, Any]) -> str:
    """One line: the pod, its phase and node, and whatever keeps it from being Ready."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    parts = [f"pod {meta.get('name')}: {status.get('phase', 'Unknown')}"]
    node = (pod.get("spec") or {}).get("nodeName")
    parts.append(f"on {node}" if node else "not scheduled")
    for entry in status.get("conditions") or []:
        if entry.get("status") != "True" and (entry.get("reason") or entry.get("message")):
            parts.append(f"{entry.get('type')}=False ({entry.get('reason') or ''}: {entry.get('message') or ''})")
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        for kind in ("waiting", "terminated"):
            if kind in state:
                detail = state[kind] or {}
                parts.append(f"container {container.get('name')} {kind}: {detail.get('reason')} {detail.get('message') or ''}".rstrip())
    return "; ".join(parts)

"""What a failed cluster test leaves behind: events, logs and object YAML, secrets redacted.

Collected before anything is deleted, into `<artifacts>/<test id>/`. Everything written goes
through base/redact.py: object YAML, Event messages and pod logs alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from serving_conformance.base.redact import redact, redact_text
from serving_conformance.cluster.kube import Kube, KubeError

__all__ = ["collect", "collect_for_item", "redact"]

# (apiVersion, kind) dumped for the namespace under test, in this order.
DUMPED_KINDS: tuple[tuple[str, str], ...] = (
    ("serving.kserve.io/v1beta1", "InferenceService"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
)
LOG_TAIL_LINES = 400


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:150]


def _write(path: Path, text: str) -> None:
    """Every artifact is written here, redacted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact_text(text))


def _pod_logs(kube: Kube, pod: Mapping[str, Any], directory: Path) -> None:
    core = k8s_client.CoreV1Api(kube.api_client)
    meta, spec = pod["metadata"], pod.get("spec", {})
    names = [c["name"] for c in spec.get("initContainers") or []] + [c["name"] for c in spec.get("containers") or []]
    for container in names:
        for previous in (False, True):
            try:
                text = core.read_namespaced_pod_log(
                    meta["name"], meta["namespace"], container=container, previous=previous, tail_lines=LOG_TAIL_LINES
                )
            except ApiException as exc:
                if previous:
                    continue
                text = f"(no log: {exc.status} {exc.reason})\n"
            suffix = ".previous.log" if previous else ".log"
            _write(directory / "logs" / f"{meta['name']}.{container}{suffix}", text)


def collect(kube: Kube, namespaces: Iterable[str], destination: Path, extra: Mapping[str, str] | None = None) -> Path:
    """Dump the namespaces' state under `destination`; returns it. Never raises on API errors."""
    destination.mkdir(parents=True, exist_ok=True)
    for namespace in namespaces:
        base = destination / namespace
        try:
            events = kube.list("v1", "Event", namespace=namespace)
            events.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
            lines = [
                f"{e.get('lastTimestamp') or e.get('eventTime')}  {e.get('type')}  {e['involvedObject'].get('kind')}/"
                f"{e['involvedObject'].get('name')}  {e.get('reason')}: {e.get('message')}"
                for e in events
            ]
            _write(base / "events.txt", "\n".join(lines) + "\n")
        except (ApiException, KubeError) as exc:
            _write(base / "events.txt", f"(events unavailable: {exc})\n")
        for api_version, kind in DUMPED_KINDS:
            try:
                objects = kube.list(api_version, kind, namespace=namespace)
            except (ApiException, KubeError) as exc:
                _write(base / f"{kind}.error.txt", f"{exc}\n")
                continue
            if objects:
                _write(base / f"{kind}.yaml", yaml.safe_dump_all([redact(o) for o in objects], sort_keys=False))
            if kind == "Pod":
                for pod in objects:
                    _pod_logs(kube, pod, base)
    for name, text in (extra or {}).items():
        _write(destination / _safe_name(name), text)
    return destination


def collect_for_item(item) -> Path | None:
    """Diagnostics of a failed cluster test, from its own fixtures; None when there is no cluster."""
    funcargs = getattr(item, "funcargs", {})
    deployer = funcargs.get("deployer")
    settings = funcargs.get("conformance_settings")
    if deployer is None or settings is None:
        return None
    destination = settings.artifacts_dir / _safe_name(item.nodeid)
    try:
        return collect(deployer.kube, deployer.namespaces(), destination)
    except Exception as exc:  # diagnostics must never hide the failure itself
        _write(destination / "collect-error.txt", f"{exc}\n")
        return destination

"""Put the workloads under test into a test namespace, once each, and wait for them.

A workload comes with what it needs to run: the Services that select a Deployment's pods, and the
Secrets its env references (generated when the manifests do not carry them, as a platform's secret
store would: random, never printed). Each object is applied once per namespace.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from serving_conformance.cluster.installer import deployment_available, is_platform
from serving_conformance.cluster.kube import RUN_LABEL, Kube, Ref, WaitTimeout
from serving_conformance.manifests.load import ManifestSet, Resource
from serving_conformance.manifests.workloads import as_list, as_mapping, workloads_of

ISVC_API = "serving.kserve.io/v1beta1"


def condition(obj: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any] | None:
    for entry in ((obj or {}).get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return entry
    return None


def is_true(obj: Mapping[str, Any] | None, kind: str) -> bool:
    entry = condition(obj, kind)
    return bool(entry) and entry.get("status") == "True"


def describe_conditions(obj: Mapping[str, Any] | None) -> str:
    entries = ((obj or {}).get("status") or {}).get("conditions") or []
    if not entries:
        return "no conditions reported"
    return "; ".join(
        f"{c.get('type')}={c.get('status')}" + (f" ({c.get('reason')}: {c.get('message')})" if c.get("status") != "True" else "")
        for c in entries
    )


def identity(obj: Mapping[str, Any] | None) -> tuple[Any, Any]:
    """Which object, at which spec: changed by a re-create or a spec change, not by status."""
    meta = (obj or {}).get("metadata") or {}
    return meta.get("uid"), meta.get("generation")


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


@dataclass
class Deployer:
    kube: Kube
    namespace: str
    manifests: ManifestSet
    kserve_namespace: str
    run_id: str
    progress: Callable[[str], None]
    applied: set[str] = field(default_factory=set)
    secrets_made: dict[str, dict[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Waits that timed out: the object's (uid, generation) then, and the failure message.
    timed_out: dict[str, tuple[tuple[Any, Any], str]] = field(default_factory=dict)

    def apply(self, body: Mapping[str, Any]) -> None:
        meta = dict(body.get("metadata") or {})
        key = f"{body['kind']}/{meta.get('name')}"
        with self.lock:
            if key in self.applied:
                return
            meta["labels"] = {**(meta.get("labels") or {}), RUN_LABEL: self.run_id}
            self.kube.apply({**body, "metadata": meta}, namespace=self.namespace)
            self.applied.add(key)

    def deploy(self, resource: Resource) -> None:
        """Apply a serving object and everything it needs."""
        if is_platform(resource, self.kserve_namespace):
            raise ValueError(f"{resource.ident} is a platform object, installed with the platform")
        for name, keys in self.referenced_secrets(resource).items():
            self.ensure_secret(name, keys)
        self.apply(resource.body)
        for service in self.services_selecting(resource):
            self.apply(service.body)

    def release(self) -> None:
        """Delete the workloads applied so far (their pods, and so their engines, stop); a later
        test deploys again what it needs."""
        with self.lock:
            applied, self.applied = self.applied, set()
        for key in applied:
            kind, _, name = key.partition("/")
            if kind in ("InferenceService", "Deployment"):
                api = ISVC_API if kind == "InferenceService" else "apps/v1"
                self.kube.delete(Ref(api, kind, name, self.namespace))

    def referenced_secrets(self, resource: Resource) -> dict[str, set[str]]:
        wanted: dict[str, set[str]] = {}
        for workload in workloads_of(resource):
            for container in workload.containers:
                for entry in as_list(container.body.get("env")):
                    ref = as_mapping(as_mapping(as_mapping(entry).get("valueFrom")).get("secretKeyRef"))
                    if ref.get("name"):
                        wanted.setdefault(str(ref["name"]), set()).add(str(ref.get("key")))
        return wanted

    def ensure_secret(self, name: str, keys: set[str]) -> None:
        declared = self.manifests.find("Secret", name)
        if declared is not None:
            self.apply(declared.body)
            return
        with self.lock:
            if name in self.secrets_made:
                return
            values = {key: secrets.token_urlsafe(24) for key in sorted(keys)}
            self.secrets_made[name] = values
        self.apply({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
        })

    def secret_value(self, name: str, key: str) -> str:
        if name in self.secrets_made:
            return self.secrets_made[name][key]
        secret = self.kube.get(Ref("v1", "Secret", name, self.namespace)) or {}
        return base64.b64decode((secret.get("data") or {})[key]).decode()

    def services_selecting(self, resource: Resource) -> list[Resource]:
        if resource.kind == "InferenceService":
            return []  # KServe makes the predictor Service
        labels = as_mapping(as_mapping(as_mapping(resource.spec.get("template")).get("metadata")).get("labels"))
        found = []
        for service in self.manifests.of_kind("Service"):
            selector = as_mapping(service.spec.get("selector"))
            if service.namespace is None and selector and all(labels.get(k) == v for k, v in selector.items()):
                found.append(service)
        return found

    # --- waits --------------------------------------------------------------------------------

    def ready(self, resource: Resource, timeout: float) -> dict[str, Any]:
        """Deploy an InferenceService (if not yet) and return it once Ready."""
        self.deploy(resource)
        return self.ready_isvc(resource.name, timeout)

    def ready_isvc(self, name: str, timeout: float) -> dict[str, Any]:
        ref = Ref(ISVC_API, "InferenceService", name, self.namespace)

        def explain(exc: WaitTimeout, last: dict[str, Any] | None) -> str:
            return (
                f"InferenceService {self.namespace}/{name} was not Ready within {timeout:.0f}s: "
                f"{describe_conditions(last)}"
                f"{self.pods_report(f'serving.kserve.io/inferenceservice={name}')}"
            )

        return self._wait(ref, lambda o: is_true(o, "Ready"), timeout, "Ready", explain)

    def available_deployment(self, name: str, timeout: float) -> dict[str, Any]:
        ref = Ref("apps/v1", "Deployment", name, self.namespace)

        def explain(exc: WaitTimeout, last: dict[str, Any] | None) -> str:
            labels = as_mapping(as_mapping(as_mapping(last).get("spec")).get("selector")).get("matchLabels")
            selector = ",".join(f"{k}={v}" for k, v in as_mapping(labels).items())
            return f"{exc}{self.pods_report(selector) if selector else ''}"

        return self._wait(ref, deployment_available, timeout, "available", explain)

    def _wait(
        self, ref: Ref, done: Callable[[dict[str, Any] | None], bool], timeout: float, what: str,
        explain: Callable[[WaitTimeout, dict[str, Any] | None], str],
    ) -> dict[str, Any]:
        """Wait for `done`; a wait that already timed out on the same, unchanged object fails at
        once with the same explanation, so tests sharing a broken workload do not each wait."""
        earlier = self.timed_out.get(str(ref))
        if earlier is not None:
            current = self.kube.get(ref)
            if not done(current) and earlier[0] == identity(current):
                raise WaitTimeout(f"{earlier[1]}\n(unchanged since that wait timed out earlier in this run; not waited on again)")
        self.progress(f"waiting for {ref.kind} {ref.namespace}/{ref.name} to be {what} (up to {timeout:.0f}s)")
        try:
            return self.kube.wait_for(ref, done, timeout, what)
        except WaitTimeout as exc:
            last = self.kube.get(ref)
            message = explain(exc, last)
            self.timed_out[str(ref)] = (identity(last), message)
            raise WaitTimeout(message) from None

    def pods_report(self, selector: str) -> str:
        """The pods a workload's wait was about, and why they are not Ready: the failure says
        what happened without opening the diagnostics directory."""
        try:
            pods = self.kube.list("v1", "Pod", namespace=self.namespace, label_selector=selector)
        except Exception as exc:  # the report is an aid; never hide the timeout behind it
            return f"\npods ({selector}): could not be listed: {exc}"
        if not pods:
            return f"\npods ({selector}): none"
        return "".join(f"\n{describe_pod(pod)}" for pod in pods)

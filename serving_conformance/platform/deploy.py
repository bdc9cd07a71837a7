"""Put the workloads under test into the cluster, once each, and wait for them.

A workload comes with what it needs to run: the Services that select a Deployment's pods, the
Secrets its env references (generated when the manifests do not carry them, as a platform's secret
store would: random, never printed). Objects the manifests place in a namespace (KServe's own, say)
are deployed there; the others go into the run's namespace. Every object applied is labelled with
the run id, so teardown finds it wherever it is.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from serving_conformance.base.features import Substitution
from serving_conformance.base.redact import Secret
from serving_conformance.cluster import hopeless
from serving_conformance.cluster.conditions import deployment_available as _available
from serving_conformance.cluster.conditions import describe_conditions, describe_pod, identity, is_true
from serving_conformance.cluster.kube import RUN_LABEL, Kube, Ref, WaitHopeless, WaitTimeout
from serving_conformance.manifests.fit import Room, fit
from serving_conformance.manifests.images import ImageMap
from serving_conformance.manifests.model import ManifestSet, Resource
from serving_conformance.manifests.roles import is_platform
from serving_conformance.manifests.scale import scale_up
from serving_conformance.manifests.workloads import as_list, as_mapping, workloads_of

ISVC_API = "serving.kserve.io/v1beta1"
# What runs pods (and so engines): what releasing deletes.
WORKLOAD_KINDS = ("InferenceService", "Deployment")
ISVC_LABEL = "serving.kserve.io/inferenceservice"


def referenced_secrets(resource: Resource) -> dict[str, set[str]]:
    """The Secret names and keys a workload's containers read (env valueFrom.secretKeyRef)."""
    wanted: dict[str, set[str]] = {}
    for workload in workloads_of(resource):
        for container in workload.init_containers + workload.containers:
            for entry in as_list(container.body.get("env")):
                ref = as_mapping(as_mapping(as_mapping(entry).get("valueFrom")).get("secretKeyRef"))
                if ref.get("name"):
                    wanted.setdefault(str(ref["name"]), set()).add(str(ref.get("key")))
    return wanted


def secret_stand_ins(manifests: ManifestSet) -> list[Substitution]:
    """A stand-in for each Secret the deployer will create because the manifests hold none (the
    platform's secret store writes it): made with exactly the keys the containers read, it proves
    nothing about the store; it qualifies only the results of the workloads that read it."""
    found = []
    for resource in manifests.resources:
        if is_platform(resource):
            continue
        for name, keys in sorted(referenced_secrets(resource).items()):
            if manifests.find("Secret", name) is not None:
                continue
            source = next((f"ExternalSecret {e.name}" for e in manifests.of_kind("ExternalSecret")
                           if as_mapping(as_mapping(e.spec).get("target")).get("name", e.name) == name), None)
            platform = f"Secret {name} ({', '.join(sorted(keys))}) as " + (f"{source} writes it" if source
                                                                             else "the platform provides it")
            found.append(Substitution("secrets", platform, "a Secret the suite created with random values for exactly "
                                      "the keys the containers read", (resource.ident,)))
    return found


@dataclass
class Deployer:
    kube: Kube
    namespace: str
    manifests: ManifestSet
    kserve_namespace: str
    run_id: str
    progress: Callable[[str], None]
    # Images reachable here for those the manifests name (--image-map, and what the provider built).
    image_map: ImageMap = field(default_factory=ImageMap)
    applied: set[str] = field(default_factory=set)
    namespaces_checked: set[str] = field(default_factory=set)
    secrets_made: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)  # never in a repr
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Waits that timed out: the object's (uid, generation) then, and the failure message.
    timed_out: dict[str, tuple[tuple[Any, Any], str]] = field(default_factory=dict)
    # The cluster holds few vLLM pods: workloads go once no later test needs them.
    bounded: bool = False
    # A node allocates less than some pods request: their requests are lowered to this room.
    room: Room | None = None

    def namespace_of(self, resource: Resource) -> str:
        """Where a serving object goes: where the manifests declare it, else the run's namespace."""
        return resource.namespace or self.namespace

    def _labelled(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The object as deployed: images mapped, scaled to one replica where it declares none,
        requests fitted, labelled with the run."""
        body, _ = fit(scale_up(self.image_map.apply(body))[0], self.room)
        meta = dict(body.get("metadata") or {})
        meta["labels"] = {**(meta.get("labels") or {}), RUN_LABEL: self.run_id}
        return {**body, "metadata": meta}

    def apply(self, body: Mapping[str, Any], namespace: str | None = None) -> None:
        """Apply an object once per run (labelled with the run id)."""
        namespace = namespace or (body.get("metadata") or {}).get("namespace") or self.namespace
        key = f"{body['kind']}/{namespace}/{(body.get('metadata') or {}).get('name')}"
        with self.lock:
            if key in self.applied:
                return
            self.kube.apply(self._labelled(body), namespace=namespace)
            self.applied.add(key)

    def reapply(self, body: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Apply a changed object again (a rollout the test makes), still labelled with the run."""
        namespace = namespace or (body.get("metadata") or {}).get("namespace") or self.namespace
        return self.kube.apply(self._labelled(body), namespace=namespace)

    def create_pod(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a Pod directly (a control that goes through the pod webhooks); raises the API
        server's refusal. Labelled with the run, so it is removed with the run's objects."""
        return self.kube.apply(self._labelled(body), namespace=self.namespace)

    def ensure_namespace(self, namespace: str) -> None:
        """A namespace the manifests place objects in, made (and labelled with the run, so removed
        with it) when the cluster does not have it."""
        if namespace == self.namespace or namespace in self.namespaces_checked:
            return
        if self.kube.get(Ref("v1", "Namespace", namespace)) is None:
            self.kube.apply({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": namespace, "labels": {RUN_LABEL: self.run_id}}})
            self.progress(f"created namespace {namespace} (the manifests place objects there)")
        self.namespaces_checked.add(namespace)

    def deploy(self, resource: Resource) -> None:
        """Apply a serving object and everything it needs."""
        if is_platform(resource):
            raise ValueError(f"{resource.ident} is a platform object, installed with the platform")
        namespace = self.namespace_of(resource)
        self.ensure_namespace(namespace)
        for claim in self.claims_of(resource):
            self.apply(claim.body, namespace)
        for name, keys in referenced_secrets(resource).items():
            self.ensure_secret(name, keys, namespace)
        self.apply(resource.body, namespace)
        for service in self.services_selecting(resource):
            self.apply(service.body, namespace)
        for companion in self.companions_of(resource):
            self.apply(companion.body, namespace)

    def release(self) -> None:
        """Delete the workloads applied so far (their pods, and so their engines, stop); a later
        test deploys again what it needs."""
        with self.lock:
            applied, self.applied = self.applied, set()
        self._delete_workloads(k for k in applied if k.split("/", 1)[0] in WORKLOAD_KINDS)

    def release_except(self, keep: set[tuple[str, str]]) -> None:
        """Delete the workloads applied so far that no later test needs ((kind, name) in `keep`
        stay): on a cluster that holds few vLLM pods, the next workload's pods need their place."""
        with self.lock:
            gone = {key for key in self.applied
                    if key.split("/", 1)[0] in WORKLOAD_KINDS
                    and (key.split("/", 1)[0], key.rsplit("/", 1)[1]) not in keep}
            self.applied -= gone
        self._delete_workloads(sorted(gone), "no later test needs it")

    def _delete_workloads(self, keys: Iterable[str], why: str | None = None) -> None:
        """Delete applied workloads by their keys (kind/namespace/name); their pods stop."""
        for key in keys:
            kind, namespace, name = key.split("/", 2)
            if why is not None:
                self.progress(f"releasing {kind} {namespace}/{name}: {why}")
            self.kube.delete(Ref(ISVC_API if kind == "InferenceService" else "apps/v1", kind, name, namespace))

    def companions_of(self, resource: Resource) -> list[Resource]:
        """Serving objects the manifests ship for an InferenceService (labelled with KServe's
        inferenceservice label): they go with it, whatever their kind."""
        if resource.kind != "InferenceService":
            return []
        return [r for r in self.manifests.resources
                if r is not resource and not is_platform(r) and r.namespace == resource.namespace
                and as_mapping(r.metadata.get("labels")).get(ISVC_LABEL) == resource.name]

    def claims_of(self, resource: Resource) -> list[Resource]:
        """The PersistentVolumeClaims the workload's pods mount, as the manifests declare them."""
        found = []
        for workload in workloads_of(resource):
            for volume in as_list(workload.pod.get("volumes")):
                name = as_mapping(as_mapping(volume).get("persistentVolumeClaim")).get("claimName")
                claim = self.manifests.find("PersistentVolumeClaim", str(name), resource.namespace) if name else None
                if claim is not None:
                    found.append(claim)
        return found

    def ensure_secret(self, name: str, keys: set[str], namespace: str) -> None:
        declared = self.manifests.find("Secret", name)
        if declared is not None:
            self.apply(declared.body, namespace)
            return
        with self.lock:
            if name in self.secrets_made:
                values = self.secrets_made[name]
            else:
                values = {key: secrets.token_urlsafe(24) for key in sorted(keys)}
                self.secrets_made[name] = values
        self.apply({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
        }, namespace)

    def secret_value(self, name: str, key: str, namespace: str | None = None) -> Secret:
        if name in self.secrets_made:
            return Secret(self.secrets_made[name][key])
        secret = self.kube.get(Ref("v1", "Secret", name, namespace or self.namespace)) or {}
        return Secret(base64.b64decode((secret.get("data") or {})[key]).decode())

    def services_selecting(self, resource: Resource) -> list[Resource]:
        if resource.kind == "InferenceService":
            return []  # KServe makes the predictor Service
        labels = as_mapping(as_mapping(as_mapping(resource.spec.get("template")).get("metadata")).get("labels"))
        found = []
        for service in self.manifests.of_kind("Service"):
            selector = as_mapping(service.spec.get("selector"))
            same_place = service.namespace == resource.namespace
            if same_place and selector and all(labels.get(k) == v for k, v in selector.items()):
                found.append(service)
        return found

    # --- waits --------------------------------------------------------------------------------

    def deploy_ready(self, resource: Resource, timeout: float) -> dict[str, Any]:
        """Deploy an InferenceService (if not yet) and return it once Ready."""
        self.deploy(resource)
        return self.wait_isvc_ready(resource.name, timeout, self.namespace_of(resource))

    def wait_isvc_ready(self, name: str, timeout: float, namespace: str | None = None) -> dict[str, Any]:
        namespace = namespace or self.namespace
        ref = Ref(ISVC_API, "InferenceService", name, namespace)

        def explain(exc: WaitTimeout, last: dict[str, Any] | None) -> str:
            return (
                f"InferenceService {namespace}/{name} was not Ready within {timeout:.0f}s: "
                f"{describe_conditions(last)}"
                f"{self.pods_report(f'serving.kserve.io/inferenceservice={name}', namespace)}"
            )

        doomed = self._doomed(f"{ISVC_LABEL}={name}", namespace, f"{name}-predictor")
        return self._wait(ref, lambda o: is_true(o, "Ready"), timeout, "Ready", explain, doomed)

    def available_deployment(self, name: str, timeout: float, namespace: str | None = None) -> dict[str, Any]:
        namespace = namespace or self.namespace
        ref = Ref("apps/v1", "Deployment", name, namespace)

        def explain(exc: WaitTimeout, last: dict[str, Any] | None) -> str:
            labels = as_mapping(as_mapping(as_mapping(last).get("spec")).get("selector")).get("matchLabels")
            selector = ",".join(f"{k}={v}" for k, v in as_mapping(labels).items())
            return f"{exc}{self.pods_report(selector, namespace) if selector else ''}"

        def selector(deployment: dict[str, Any] | None) -> str:
            labels = as_mapping(as_mapping(as_mapping(deployment).get("spec")).get("selector")).get("matchLabels")
            return ",".join(f"{k}={v}" for k, v in as_mapping(labels).items())

        return self._wait(ref, _available, timeout, "available", explain, self._doomed(selector, namespace))

    def _doomed(self, selector: str | Callable[[dict[str, Any] | None], str], namespace: str,
                deployment: str | None = None) -> Callable[[dict[str, Any] | None], str | None]:
        """Why a workload's wait cannot end well any more (cluster/hopeless.py): its Deployment
        (the awaited object itself, or a named one) scaled to nothing or its pods refused, or every
        one of its pods stuck (an image that cannot be pulled, a crash loop, no node that can
        ever hold it)."""

        def check(obj: dict[str, Any] | None) -> str | None:
            owner = self.kube.get(Ref("apps/v1", "Deployment", deployment, namespace)) if deployment else obj
            for why in (hopeless.scaled_to_nothing(owner), hopeless.refused_pods(owner)):
                if why:
                    return why
            labels = selector(obj) if callable(selector) else selector
            pods = self.kube.list("v1", "Pod", namespace=namespace, label_selector=labels) if labels else []
            if not pods:
                return None
            nodes = self.kube.list("v1", "Node")
            reasons = [hopeless.stuck_pod(pod, nodes) for pod in pods]
            return "; ".join(r for r in reasons if r) if all(reasons) else None

        return check

    def _wait(
        self, ref: Ref, done: Callable[[dict[str, Any] | None], bool], timeout: float, what: str,
        explain: Callable[[WaitTimeout, dict[str, Any] | None], str],
        doomed: Callable[[dict[str, Any] | None], str | None] | None = None,
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
            return self.kube.wait_for(ref, done, timeout, what, doomed=doomed)
        except WaitHopeless as exc:
            last = self.kube.get(ref)
            message = f"{exc}\n{describe_conditions(last)}"
            self.timed_out[str(ref)] = (identity(last), message)
            raise WaitHopeless(message) from None
        except WaitTimeout as exc:
            last = self.kube.get(ref)
            message = explain(exc, last)
            self.timed_out[str(ref)] = (identity(last), message)
            raise WaitTimeout(message) from None

    def pods_report(self, selector: str, namespace: str | None = None) -> str:
        """The pods a workload's wait was about, and why they are not Ready: the failure says
        what happened without opening the diagnostics directory."""
        try:
            pods = self.kube.list("v1", "Pod", namespace=namespace or self.namespace, label_selector=selector)
        except Exception as exc:  # the report is an aid; never hide the timeout behind it
            return f"\npods ({selector}): could not be listed: {exc}"
        if not pods:
            return f"\npods ({selector}): none"
        return "".join(f"\n{describe_pod(pod)}" for pod in pods)

    def namespaces(self) -> list[str]:
        """Every namespace this deployer put something in (for diagnostics)."""
        with self.lock:
            used = {key.split("/", 2)[1] for key in self.applied}
        return sorted(used | {self.namespace})

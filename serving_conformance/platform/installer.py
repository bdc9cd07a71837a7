"""Make a cluster ready: one install path for every provider.

The provider says which components it runs itself (`Cluster.runs`); the installer installs every
other one, in order, from the pinned releases, then the platform's own configuration and objects:

1. the Gateway API CRDs;
2. cert-manager (KServe's webhook certificates);
3. a Gateway API implementation, and a GatewayClass named after the class the manifests' Gateway
   uses, served by that implementation's controller;
4. KServe: its CRDs, namespace and shipped `inferenceservice-config` overlaid with the platform's
   configuration; then the KServe release (or, where the provider runs KServe itself, the
   provider starts it now, on that configuration);
5. the platform objects of the manifests (the Gateway, namespaces...).

Each object is applied by server-side apply with the suite's field manager (a rerun is a no-op),
each wait watches. Without permission to install (an existing cluster without
--install-platform), nothing is applied: the platform is checked and all that is missing is
reported at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from serving_conformance.base.settings import Settings
from serving_conformance.base.text import clip
from serving_conformance.base.upstream import (
    gateway_api_crds,
    kserve_crds,
    kserve_shipped_configmap,
)
from serving_conformance.cluster.base import Cluster, Component, Provider, ProviderError
from serving_conformance.cluster.conditions import deployment_available
from serving_conformance.cluster.kube import RUN_LABEL, Kube, Ref
from serving_conformance.cluster.releases import Published, ReleaseSource
from serving_conformance.manifests.images import ImageMap
from serving_conformance.manifests.model import HELM_VALUES_KIND, ManifestSet, Resource
from serving_conformance.manifests.platform_config import CONFIGMAP_NAME, configmap_for, is_kserve_config, read_config
from serving_conformance.manifests.roles import is_platform
from serving_conformance.platform.deploy import ISVC_API

ENVOY_GATEWAY_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
KSERVE_CONTROLLER = "kserve-controller-manager"
INSTALLED_BY_LABEL = "serving-conformance.dev/installed"
# Field manager of the release's own objects; the platform's configuration is applied by the
# suite's default manager, so one never drops the other's fields.
RELEASE_MANAGER = "kserve-release"
# What the deployer may create outside the run's own namespaces (labelled with the run id).
RUN_OBJECT_KINDS = (
    ("serving.kserve.io/v1beta1", "InferenceService"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "PersistentVolumeClaim"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
)


class TeardownTimeout(RuntimeError):
    """Teardown ran out of its grace period (the `teardown` timeout)."""


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TeardownTimeout("the teardown grace period ran out")
    return left


def api_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            return str(json.loads(body).get("message", body))
        except (ValueError, AttributeError):
            return str(body)
    return str(exc)


def with_label(document: Mapping[str, Any], key: str, value: str) -> dict[str, Any]:
    result = dict(document)
    meta = dict(result.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), key: value}
    result["metadata"] = meta
    return result


def webhook_probe(namespace: str) -> dict[str, Any]:
    """An InferenceService KServe's webhooks judge, sent as a server-side dry run only."""
    return {"apiVersion": ISVC_API, "kind": "InferenceService",
            "metadata": {"name": "sc-webhook-probe", "namespace": namespace},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "pvc://probe/model"}}}}


class Installer:
    def __init__(
        self, settings: Settings, cluster: Cluster, kube: Kube, manifests: ManifestSet, log: Callable[[str], None],
        source: ReleaseSource | None = None,
    ) -> None:
        self.settings = settings
        self.cluster = cluster
        self.kube = kube
        self.manifests = manifests
        self.log = log
        self.image_map = ImageMap(dict(settings.image_map)).merged(cluster.image_map)
        self.source = source if source is not None else Published()

    # --- entry points -------------------------------------------------------------------------

    def may_install(self) -> bool:
        return self.cluster.provider in ("kind", "local") or self.settings.install_platform

    def install(self, provider: Provider) -> None:
        self.check_reachable()
        if not self.may_install():
            self.verify_platform()
            return
        runs = self.cluster.runs
        if Component.GATEWAY_API_CRDS not in runs:
            self.install_gateway_api_crds()
        if Component.CERT_MANAGER not in runs:
            self.install_release("cert-manager")
        if Component.GATEWAY_CONTROLLER not in runs:
            self.install_release("gateway-controller")
        if Component.KSERVE in runs:
            self.install_kserve_config()
            provider.start_components(self.cluster, self.kube, self.manifests)
        else:
            self.install_release("kserve")
            self.apply_platform_configmap()
            # KServe reads inferenceservice-config at start: restart it on the platform's config.
            self.restart(Ref("apps/v1", "Deployment", KSERVE_CONTROLLER, self.settings.kserve_namespace))
            self.wait_webhooks_answer()
        self.install_gateway_classes()
        self.apply_platform_objects()

    def remove_run_objects(self, run_id: str, deadline: float | None = None) -> None:
        """Delete the namespaces this run created (labelled with its id) and wait for them, all
        before `deadline` (monotonic; TeardownTimeout past it)."""
        deadline = deadline if deadline is not None else time.monotonic() + self.settings.timeouts.teardown
        # One short question first: a server that does not answer costs api_reachable, not a
        # request timeout per object.
        self.kube.server_version(timeout=min(self.settings.timeouts.api_reachable, _remaining(deadline)))
        namespaces = self.kube.list("v1", "Namespace", label_selector=f"{RUN_LABEL}={run_id}")
        for namespace in namespaces:
            _remaining(deadline)
            self.kube.delete(Ref("v1", "Namespace", namespace["metadata"]["name"]))
        for namespace in namespaces:
            ref = Ref("v1", "Namespace", namespace["metadata"]["name"])
            wait = min(self.settings.timeouts.namespace_deleted, _remaining(deadline))
            self.kube.wait_for(ref, lambda obj: obj is None, wait, "namespace deletion")
        if namespaces:
            self.log(f"removed {len(namespaces)} namespace(s) of run {run_id}")
        # Serving objects deployed where the manifests declare them (another namespace): by label.
        removed = 0
        for api_version, kind in RUN_OBJECT_KINDS:
            _remaining(deadline)
            if not self.kube.serves(api_version, kind):
                continue
            for obj in self.kube.list(api_version, kind, label_selector=f"{RUN_LABEL}={run_id}"):
                removed += self.kube.delete(Ref.of({**obj, "apiVersion": api_version, "kind": kind}))
        if removed:
            self.log(f"removed {removed} object(s) of run {run_id} outside its namespaces")

    # --- steps --------------------------------------------------------------------------------

    def check_reachable(self) -> None:
        try:
            version = self.kube.server_version(timeout=self.settings.timeouts.api_reachable)
        except Exception as exc:  # urllib3, ApiException, config errors: one clear message
            status = getattr(exc, "status", None)
            if status in (401, 403):
                raise ProviderError(
                    f"the API server of context {self.cluster.context!r} rejects the credentials ({status}): "
                    "they may have expired; refresh them (e.g. gcloud container clusters get-credentials)"
                ) from exc
            raise ProviderError(
                f"cannot reach the API server of context {self.cluster.context!r} ({self.cluster.kubeconfig}): {exc}"
            ) from exc
        self.cluster.info["kubernetes"] = version
        self.log(f"cluster {self.cluster.name} ({self.cluster.provider}) answers: Kubernetes {version}")

    def apply_all(self, documents: list[Mapping[str, Any]], what: str, manager: str | None = None) -> None:
        self.log(f"applying {what} ({len(documents)} objects)")
        for document in documents:
            labelled = with_label(self.image_map.apply(document), INSTALLED_BY_LABEL, "true")
            try:
                if manager:
                    self.kube.apply(labelled, manager=manager)
                else:
                    self.kube.apply(labelled)
            except Exception as exc:
                ref = f"{document.get('kind')} {(document.get('metadata') or {}).get('name')}"
                raise ProviderError(f"the API server rejected {ref} of {what}: {api_message(exc)}") from exc

    def install_crds(self, crds: list[dict[str, Any]], what: str) -> None:
        self.apply_all(crds, what, manager=RELEASE_MANAGER)
        self.kube.wait_crds_established(crds, self.settings.timeouts.crd_established)

    def install_gateway_api_crds(self) -> None:
        expect = self.settings.expect
        self.install_crds(gateway_api_crds(expect.gateway_api_version, expect.gateway_api_channel),
                          f"Gateway API {expect.gateway_api_version} ({expect.gateway_api_channel}) CRDs")

    def install_release(self, name: str) -> list[dict[str, Any]]:
        documents = self.source.documents(name)
        crds = [d for d in documents if d["kind"] == "CustomResourceDefinition"]
        self.install_crds(crds, f"{name} CRDs")
        rest = [d for d in documents if d["kind"] != "CustomResourceDefinition"]
        # A release may leave its namespace out (KServe's kserve.yaml does): create those first.
        namespaces = sorted({(d.get("metadata") or {}).get("namespace") for d in rest} - {None})
        self.apply_all([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in namespaces],
                       f"{name} namespaces")
        self.apply_all(rest, name, manager=RELEASE_MANAGER)
        for deployment in (d for d in rest if d["kind"] == "Deployment"):
            meta = deployment["metadata"]
            self.wait_available(Ref("apps/v1", "Deployment", meta["name"], meta.get("namespace")))
        return documents

    def wait_available(self, ref: Ref) -> None:
        self.kube.wait_for(ref, deployment_available, self.settings.timeouts.controller_ready,
                           "the Deployment to be available", self.log)

    def restart(self, ref: Ref) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.kube.apply({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": ref.name, "namespace": ref.namespace},
            "spec": {"template": {"metadata": {"annotations": {"serving-conformance.dev/restartedAt": stamp}}}},
        })
        self.wait_available(ref)

    def wait_webhooks_answer(self) -> None:
        """KServe's webhooks answer through their Service: a server-side dry run of an
        InferenceService reaches them. Asked again every second: a restarted manager's endpoint
        reaches every node's Service rules a moment after its pod is Ready, and there is nothing
        to watch for that."""
        namespace = self.settings.kserve_namespace
        probe = webhook_probe(namespace)
        resource = self.kube.resource(ISVC_API, "InferenceService")
        deadline = time.monotonic() + self.settings.timeouts.controller_ready
        while True:
            try:
                resource.create(body=probe, namespace=namespace, dry_run="All")
                return
            except ApiException as exc:
                message = str(getattr(exc, "body", "") or exc)
                if "failed calling webhook" not in message:
                    return  # the webhook answered (a refusal is an answer)
                if time.monotonic() > deadline:
                    raise ProviderError(f"KServe's webhooks do not answer through their Service within "
                                        f"{self.settings.timeouts.controller_ready:.0f}s: {clip(message, 400)}") from exc
            time.sleep(1)

    def install_kserve_config(self) -> None:
        """KServe's CRDs, its namespace and its shipped ConfigMap with the platform's settings: all
        that the manager reads at start, in place before it starts."""
        version, namespace = self.settings.expect.kserve_version, self.settings.kserve_namespace
        self.install_crds(kserve_crds(version), f"KServe {version} CRDs")
        self.apply_all([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}], "KServe's namespace",
                       manager=RELEASE_MANAGER)
        self.apply_all([kserve_shipped_configmap(version, namespace)], f"KServe {version}'s {CONFIGMAP_NAME}",
                       manager=RELEASE_MANAGER)
        self.apply_platform_configmap()

    def apply_platform_configmap(self) -> None:
        config = self.platform_config()
        if config is not None:
            shipped = kserve_shipped_configmap(self.settings.expect.kserve_version, self.settings.kserve_namespace)
            self.apply_all([self.configmap_from(config, shipped)], f"the platform's KServe configuration ({config.where})")

    def platform_config(self) -> Resource | None:
        sources = [r for r in self.manifests.resources if is_kserve_config(r)]
        return sources[0] if sources else None

    def configmap_from(self, resource: Resource, shipped: Mapping[str, Any]) -> dict[str, Any]:
        """The platform's ConfigMap in KServe's namespace. From Helm values: the settings the suite
        reads from them, written into the release's ConfigMap (helm renders the rest of the chart)."""
        if resource.kind == HELM_VALUES_KIND:
            self.log(f"{resource.where}: Helm values; writing the KServe settings the suite reads from them "
                     f"into the {CONFIGMAP_NAME} ConfigMap (the chart's other values need helm)")
            return configmap_for(read_config(resource), shipped)
        body = dict(resource.body)
        body["metadata"] = {**dict(body["metadata"]), "namespace": self.settings.kserve_namespace}
        return body

    def install_gateway_classes(self) -> None:
        """A GatewayClass for each class the manifests' Gateways name, served by the controller that
        runs here (the class under test belongs to the platform's own gateway implementation)."""
        controller = self.cluster.gateway_controller or ENVOY_GATEWAY_CONTROLLER
        names = sorted({str(r.spec.get("gatewayClassName")) for r in self.manifests.of_kind("Gateway")
                        if r.spec.get("gatewayClassName")})
        self.apply_all([
            {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": name},
             "spec": {"controllerName": controller, "description": f"served here by {controller}"[:64]}}
            for name in names
        ], "GatewayClasses", manager=RELEASE_MANAGER)

    def apply_platform_objects(self) -> None:
        """The platform objects of the manifests, namespaces first (those they name but do not
        declare are made)."""
        objects = self.platform_objects()
        declared = {r.name for r in objects if r.kind == "Namespace"}
        needed = sorted({r.namespace for r in objects if r.namespace} - declared)
        namespaces = [r.body for r in objects if r.kind == "Namespace"]
        namespaces += [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in needed]
        self.apply_all(namespaces, "the platform's namespaces")
        self.apply_all([r.body for r in objects if r.kind != "Namespace"], "the platform manifests")

    def platform_objects(self) -> list[Resource]:
        """The platform objects of the manifests, but KServe's configuration (applied above) and
        GatewayClasses (made for the controller that runs here)."""
        return [r for r in self.manifests.resources
                if is_platform(r) and not is_kserve_config(r) and r.kind != "GatewayClass"]

    def verify_platform(self) -> None:
        """An existing cluster the suite may not install into: report everything that is missing."""
        missing = []
        for api_version, kind in (
            ("serving.kserve.io/v1beta1", "InferenceService"),
            ("gateway.networking.k8s.io/v1", "HTTPRoute"),
            ("gateway.networking.k8s.io/v1", "Gateway"),
        ):
            if not self.kube.serves(api_version, kind):
                missing.append(f"{kind} ({api_version}) is not served: its CRD is not installed")
        if not missing:
            controller = self.kube.get(Ref("apps/v1", "Deployment", KSERVE_CONTROLLER, self.settings.kserve_namespace))
            if controller is None or not deployment_available(controller):
                missing.append(f"Deployment {self.settings.kserve_namespace}/{KSERVE_CONTROLLER} is absent or not available")
            for resource in self.manifests.resources:
                if resource.kind in ("Gateway", "GatewayClass") and self.kube.get(
                    Ref(resource.api_version, resource.kind, resource.name, resource.namespace)
                ) is None:
                    missing.append(f"{resource.kind} {resource.namespace or ''}/{resource.name} (from {resource.where}) is absent")
        if missing:
            raise ProviderError(
                "the platform is not installed on context "
                f"{self.cluster.context!r} (pass --install-platform to install it):\n  - " + "\n  - ".join(missing)
            )

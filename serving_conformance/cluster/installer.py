"""Make a cluster ready: Gateway API, cert-manager, KServe, a gateway, then the platform config.

Steps run in order, each applied by server-side apply with the suite's field manager (so a rerun
is a no-op) and each awaited by watching. What runs where:
- kind, or an existing cluster with --install-platform: everything from the pinned releases.
- an existing cluster without it: nothing is installed; the platform is checked and what is
  missing is reported, all at once.
- the local testbed: the provider runs KServe and the gateway as local processes, so only the
  CRDs and the platform manifests are applied here.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from serving_conformance.base import versions
from serving_conformance.base.upstream import gateway_api_files
from serving_conformance.cluster.kube import RUN_LABEL, Kube, Ref
from serving_conformance.cluster.providers import Cluster, ProviderError
from serving_conformance.manifests.load import HELM_VALUES_KIND, Resource, load_manifests
from serving_conformance.manifests.platform_config import CONFIGMAP_NAME, configmap_for, read_config
from serving_conformance.options import Settings

RELEASE_URLS = {
    "cert-manager": f"https://github.com/cert-manager/cert-manager/releases/download/v{versions.CERT_MANAGER}/cert-manager.yaml",
    "kserve": f"https://github.com/kserve/kserve/releases/download/v{versions.KSERVE}/kserve.yaml",
    "envoy-gateway": f"https://github.com/envoyproxy/gateway/releases/download/v{versions.ENVOY_GATEWAY}/install.yaml",
}
ENVOY_GATEWAY_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
KSERVE_CONTROLLER = "kserve-controller-manager"
INSTALLED_BY_LABEL = "serving-conformance.dev/installed"


def yaml_documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d.get("kind")]


def crd_documents(directory: Path) -> list[dict[str, Any]]:
    documents = []
    for path in sorted(directory.glob("*.yaml")):
        documents += [d for d in yaml_documents(path.read_text()) if d["kind"] == "CustomResourceDefinition"]
    return documents


def is_platform(resource: Resource, kserve_namespace: str) -> bool:
    """Platform objects carry their own namespace (KServe's) or are cluster-scoped by kind;
    serving objects are namespace-less and go into the namespace of the test."""
    return resource.namespace == kserve_namespace or resource.kind in ("GatewayClass", "Namespace")


class Installer:
    def __init__(self, settings: Settings, cluster: Cluster, run_dir: Path, log: Callable[[str], None]) -> None:
        self.settings = settings
        self.cluster = cluster
        self.run_dir = run_dir
        self.log = log
        self._kube: Kube | None = None

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube(self.cluster.kubeconfig, self.cluster.context, self.run_dir / "discovery-cache.json")
        return self._kube

    # --- entry points -------------------------------------------------------------------------

    def install(self) -> None:
        self.check_reachable()
        if self.cluster.platform_managed:
            # The local testbed applied the CRDs and runs KServe and the gateway itself.
            self.apply_platform_manifests()
        elif self.cluster.provider == "kind" or self.settings.install_platform:
            self.install_everything()
        else:
            self.verify_platform()

    def remove_run_objects(self, run_id: str) -> None:
        """Delete the namespaces this run created (labelled with its id) and wait for them."""
        namespaces = self.kube.list("v1", "Namespace", label_selector=f"{RUN_LABEL}={run_id}")
        for namespace in namespaces:
            self.kube.delete(Ref("v1", "Namespace", namespace["metadata"]["name"]))
        for namespace in namespaces:
            ref = Ref("v1", "Namespace", namespace["metadata"]["name"])
            self.kube.wait_for(ref, lambda obj: obj is None, self.settings.timeouts.namespace_deleted, "namespace deletion")
        if namespaces:
            self.log(f"removed {len(namespaces)} namespace(s) of run {run_id}")

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

    def apply_all(self, documents: list[Mapping[str, Any]], what: str) -> None:
        self.log(f"applying {what} ({len(documents)} objects)")
        for document in documents:
            labelled = _with_label(document, INSTALLED_BY_LABEL, "true")
            try:
                self.kube.apply(labelled)
            except Exception as exc:
                ref = f"{document.get('kind')} {document.get('metadata', {}).get('name')}"
                raise ProviderError(f"the API server rejected {ref} of {what}: {_api_message(exc)}") from exc

    def wait_crds(self, documents: list[Mapping[str, Any]]) -> None:
        self.kube.wait_crds_established(documents, self.settings.timeouts.crd_established)

    def install_crds(self) -> None:
        gateway = crd_documents(gateway_api_files(versions.GATEWAY_API) / "config" / "crd" / "standard")
        self.apply_all(gateway, f"Gateway API {versions.GATEWAY_API} CRDs")
        self.wait_crds(gateway)

    def install_release(self, name: str) -> list[dict[str, Any]]:
        url = RELEASE_URLS[name]
        try:
            with urllib.request.urlopen(url, timeout=120) as response:
                documents = yaml_documents(response.read().decode())
        except (urllib.error.URLError, OSError) as exc:
            raise ProviderError(f"cannot download {name} from {url}: {exc}") from exc
        crds = [d for d in documents if d["kind"] == "CustomResourceDefinition"]
        self.apply_all(crds, f"{name} CRDs")
        self.wait_crds(crds)
        self.apply_all([d for d in documents if d["kind"] != "CustomResourceDefinition"], name)
        for deployment in (d for d in documents if d["kind"] == "Deployment"):
            self.wait_available(Ref("apps/v1", "Deployment", deployment["metadata"]["name"], deployment["metadata"].get("namespace")))
        return documents

    def wait_available(self, ref: Ref) -> None:
        self.kube.wait_for(ref, deployment_available, self.settings.timeouts.controller_ready, "the Deployment to be available", self.log)

    def install_everything(self) -> None:
        self.install_crds()
        self.install_release("cert-manager")
        self.install_release("envoy-gateway")
        self.install_release("kserve")
        self.apply_platform_manifests(gateway_controller=ENVOY_GATEWAY_CONTROLLER)
        # KServe reads inferenceservice-config at start: restart it on the platform's config.
        self.restart(Ref("apps/v1", "Deployment", KSERVE_CONTROLLER, self.settings.kserve_namespace))

    def restart(self, ref: Ref) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.kube.apply({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": ref.name, "namespace": ref.namespace},
            "spec": {"template": {"metadata": {"annotations": {"serving-conformance.dev/restartedAt": stamp}}}},
        })
        self.wait_available(ref)

    def platform_resources(self) -> list[Resource]:
        manifests = load_manifests(self.settings.manifests_dir)
        return [r for r in manifests.resources if is_platform(r, self.settings.kserve_namespace)]

    def apply_platform_manifests(self, gateway_controller: str | None = None) -> None:
        resources = self.platform_resources()
        if gateway_controller:
            for class_name in {r.spec.get("gatewayClassName") for r in resources if r.kind == "Gateway"}:
                self.kube.apply({
                    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                    "metadata": {"name": class_name}, "spec": {"controllerName": gateway_controller},
                })
        self.apply_all([self.platform_body(r) for r in resources], "the platform manifests")

    def platform_body(self, resource: Resource) -> dict[str, Any]:
        """The object to apply; Helm values become KServe's ConfigMap with the settings the suite
        reads from them written in (helm itself renders the rest of the chart)."""
        if resource.kind != HELM_VALUES_KIND:
            return dict(resource.body)
        ref = Ref("v1", "ConfigMap", CONFIGMAP_NAME, self.settings.kserve_namespace)
        shipped = self.kube.get(ref)
        if shipped is None:
            raise ProviderError(
                f"{resource.where}: KServe is configured with Helm values, but {ref} is not in the cluster "
                "to write their settings into: install KServe first (or pass --install-platform)"
            )
        self.log(f"{resource.where}: Helm values; writing the KServe settings the suite reads from them into {ref}")
        return configmap_for(read_config(resource), shipped)

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
            for resource in self.platform_resources():
                if resource.kind in ("Gateway", "GatewayClass") and self.kube.get(
                    Ref(resource.api_version, resource.kind, resource.name, resource.namespace)
                ) is None:
                    missing.append(f"{resource.kind} {resource.namespace or ''}/{resource.name} (from {resource.where}) is absent")
        if missing:
            raise ProviderError(
                "the platform is not installed on context "
                f"{self.cluster.context!r} (pass --install-platform to install it):\n  - " + "\n  - ".join(missing)
            )


def _with_label(document: Mapping[str, Any], key: str, value: str) -> dict[str, Any]:
    result = dict(document)
    meta = dict(result.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), key: value}
    result["metadata"] = meta
    return result


def _api_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            import json

            return json.loads(body).get("message", str(body))
        except (ValueError, AttributeError):
            return str(body)
    return str(exc)


def deployment_available(obj: Mapping[str, Any] | None) -> bool:
    if not obj:
        return False
    status = obj.get("status") or {}
    generation_seen = status.get("observedGeneration", 0) >= obj.get("metadata", {}).get("generation", 0)
    conditions = status.get("conditions") or []
    available = any(c.get("type") == "Available" and c.get("status") == "True" for c in conditions)
    updated = status.get("updatedReplicas", 0) >= (obj.get("spec", {}).get("replicas") or 1)
    return generation_seen and available and updated

"""Where the installer takes each platform component's objects from.

`Published` downloads the pinned releases from their URLs (kind and real clusters with internet).
`BuiltHere` gives the equivalent objects for a cluster that reaches nothing (the offline kind):
KServe's release rendered by kustomize from the `config/` of KServe's own module (its core: CRDs,
RBAC, the manager, its webhooks, `inferenceservice-config`), with the webhook certificate cert-
manager would issue made here instead; and Traefik, the Gateway API implementation, as an
in-cluster Deployment. Both go through the same installer steps (CRDs, namespaces, objects, waits).
"""

from __future__ import annotations

import base64
import datetime as dt
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from serving_conformance.base import proc, versions
from serving_conformance.base.upstream import module_files, yaml_documents
from serving_conformance.cluster.base import ProviderError

RELEASE_URLS = {
    "cert-manager": f"https://github.com/cert-manager/cert-manager/releases/download/v{versions.CERT_MANAGER}/cert-manager.yaml",
    "kserve": f"https://github.com/kserve/kserve/releases/download/v{versions.KSERVE}/kserve.yaml",
    "gateway-controller": f"https://github.com/envoyproxy/gateway/releases/download/v{versions.ENVOY_GATEWAY}/install.yaml",
}
KSERVE_MODULE = "github.com/kserve/kserve"
WEBHOOK_SECRET = "kserve-webhook-server-cert"
KSERVE_MANAGER_DEPLOYMENT = "kserve-controller-manager"
KUBE_RBAC_PROXY = "kube-rbac-proxy"
WEBHOOK_SERVICE = "kserve-webhook-server-service"
CERT_MANAGER_KINDS = ("Certificate", "Issuer", "ClusterIssuer")
TRAEFIK_NAMESPACE = "serving-conformance-gateway"
TRAEFIK_CONTROLLER = "traefik.io/gateway-controller"
# The Service the suite reaches the gateway through when it has no address of its own.
GATEWAY_SERVICE_LABEL = "serving-conformance.dev/gateway-service"


class ReleaseSource(Protocol):
    def documents(self, component: str) -> list[dict[str, Any]]: ...


class Published:
    """The pinned releases, downloaded."""

    def documents(self, component: str) -> list[dict[str, Any]]:
        url = RELEASE_URLS[component]
        try:
            with urllib.request.urlopen(url, timeout=120) as response:
                return yaml_documents(response.read().decode())
        except (urllib.error.URLError, OSError) as exc:
            raise ProviderError(f"cannot download {component} from {url}: {exc}") from exc


class BuiltHere:
    """The releases' equivalents for a cluster that reaches no registry (images built here)."""

    def __init__(self, kserve_version: str, kustomize: Path, traefik_image: str, namespace: str = "kserve",
                 manager_image: str | None = None, on_control_plane: bool = False) -> None:
        self.kserve_version = kserve_version
        self.kustomize = kustomize
        self.traefik_image = traefik_image
        self.namespace = namespace
        self.manager_image = manager_image
        # kind: the platform's pods on the control plane, so that each worker keeps all its CPUs
        # for the one vLLM pod it can hold.
        self.on_control_plane = on_control_plane

    def documents(self, component: str) -> list[dict[str, Any]]:
        if component == "kserve":
            return self.placed(self.kserve())
        if component == "gateway-controller":
            return self.placed(traefik_documents(self.traefik_image))
        raise ProviderError(f"no {component} is built here (the cluster runs it, or does not need it)")

    def placed(self, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.on_control_plane:
            for document in documents:
                if document["kind"] == "Deployment":
                    on_control_plane(document["spec"]["template"]["spec"])
        return documents

    def kserve(self) -> list[dict[str, Any]]:
        """KServe's core as its release renders it (config/base + components/kserve), its webhook
        certificate made here."""
        config = module_files(KSERVE_MODULE, self.kserve_version, "config") / "config"
        with tempfile.TemporaryDirectory(prefix="sc-kserve-release-") as tmp:
            wrapper = Path(tmp)
            up = Path(*[".."] * len(wrapper.resolve().parts[1:])) / config.resolve().relative_to("/")
            (wrapper / "kustomization.yaml").write_text(yaml.safe_dump({
                "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": self.namespace,
                "resources": [str(up / "base")], "components": [str(up / "components" / "kserve")],
            }))
            rendered = proc.run([str(self.kustomize), "build", str(wrapper)], step="render KServe's release",
                                timeout=120, error=ProviderError)
        documents = [d for d in yaml_documents(rendered) if d["kind"] not in CERT_MANAGER_KINDS]
        if self.manager_image is not None:
            documents = [with_manager_image(d, self.manager_image) for d in documents]
        return with_webhook_certificate(documents, self.namespace)


CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"


def on_control_plane(pod: dict[str, Any]) -> None:
    """Schedule a pod spec on the control-plane node (selected, its taint tolerated)."""
    pod["nodeSelector"] = {**(pod.get("nodeSelector") or {}), CONTROL_PLANE_LABEL: ""}
    pod["tolerations"] = [*(pod.get("tolerations") or []),
                          {"key": CONTROL_PLANE_LABEL, "operator": "Exists", "effect": "NoSchedule"}]


def with_manager_image(document: dict[str, Any], image: str) -> dict[str, Any]:
    """The manager's Deployment running the manager built here (present on the nodes, never
    pulled), without its kube-rbac-proxy sidecar: that guards only the metrics endpoint, and its
    module is not on the Go module proxy, so no image of it can be built here."""
    if document["kind"] != "Deployment" or document["metadata"].get("name") != KSERVE_MANAGER_DEPLOYMENT:
        return document
    pod = document["spec"]["template"]["spec"]
    containers = []
    for container in pod["containers"]:
        if container["name"] == KUBE_RBAC_PROXY:
            continue
        if container["name"] == "manager":
            container = {**container, "image": image, "imagePullPolicy": "IfNotPresent"}
        containers.append(container)
    pod["containers"] = containers
    return document


def with_webhook_certificate(documents: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """The webhook Secret cert-manager would issue, and its CA in every webhook configuration
    (where cert-manager's CA injector would put it)."""
    ca, cert, key = _certificate([f"{WEBHOOK_SERVICE}.{namespace}.svc", f"{WEBHOOK_SERVICE}.{namespace}.svc.cluster.local"])
    bundle = base64.b64encode(ca).decode()
    result = [d for d in documents if not (d["kind"] == "Secret" and d["metadata"].get("name") == WEBHOOK_SECRET)]
    for document in result:
        if document["kind"] in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            document["metadata"].get("annotations", {}).pop("cert-manager.io/inject-ca-from", None)
            for webhook in document.get("webhooks") or []:
                webhook.setdefault("clientConfig", {})["caBundle"] = bundle
        if document["kind"] == "CustomResourceDefinition":
            conversion = (document.get("spec") or {}).get("conversion") or {}
            client = (conversion.get("webhook") or {}).get("clientConfig")
            if client is not None:
                client["caBundle"] = bundle
    result.append({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": WEBHOOK_SECRET, "namespace": namespace},
        "data": {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key).decode(),
                 "ca.crt": bundle},
    })
    return result


def _certificate(names: list[str]) -> tuple[bytes, bytes, bytes]:
    """(CA, certificate, key) in PEM: a CA of the run's own, a serving certificate for `names`."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "serving-conformance webhook CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=7))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem), cert.public_bytes(pem),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def traefik_documents(image: str) -> list[dict[str, Any]]:
    """Traefik as the cluster's Gateway API implementation: it serves GatewayClasses whose
    controllerName is traefik.io/gateway-controller, on port 80 of its pods, behind a Service."""
    name, namespace = "traefik", TRAEFIK_NAMESPACE
    labels = {"app.kubernetes.io/name": name}
    rules = [
        {"apiGroups": [""], "resources": ["namespaces", "services", "secrets", "configmaps", "nodes", "pods"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["gateway.networking.k8s.io"],
         "resources": ["gatewayclasses", "gateways", "httproutes", "grpcroutes", "tcproutes", "tlsroutes",
                       "referencegrants", "backendtlspolicies", "listenersets"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["gateway.networking.k8s.io"],
         "resources": ["gatewayclasses/status", "gateways/status", "httproutes/status", "grpcroutes/status",
                       "tcproutes/status", "tlsroutes/status", "backendtlspolicies/status", "listenersets/status"],
         "verbs": ["update", "patch"]},
    ]
    args = ["--providers.kubernetesgateway=true", "--entryPoints.web.address=:80", "--entryPoints.ping.address=:8082",
            "--ping.entryPoint=ping", "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
            "--providers.providersThrottleDuration=100ms", "--log.level=INFO"]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "serving-conformance-traefik"},
         "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "serving-conformance-traefik"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "serving-conformance-traefik"},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace, "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels},
             "spec": {"serviceAccountName": name, "containers": [{
                 "name": name, "image": image, "imagePullPolicy": "IfNotPresent", "args": args,
                 "ports": [{"name": "web", "containerPort": 80}, {"name": "ping", "containerPort": 8082}],
                 "readinessProbe": {"httpGet": {"path": "/ping", "port": "ping"}, "periodSeconds": 2},
                 "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
             }]}}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": name, "namespace": namespace, "labels": {**labels, GATEWAY_SERVICE_LABEL: "true"}},
         "spec": {"selector": labels, "ports": [{"name": "web", "port": 80, "targetPort": "web"}]}},
    ]

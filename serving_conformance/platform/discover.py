"""What an existing cluster already runs of the platform: named in the report, and where it is not
what the platform runs (a cluster kept from a kind run of this suite, a manager outside the
cluster, simulated GPUs, another gateway) a stand-in like any other.

Read once, after the platform is checked or installed: KServe's manager (its image and version, or
where its webhooks point when it runs outside the cluster), the Gateway KServe attaches its routes
to (its class and that class's controller), and the GPU nodes with the device plugins that
advertise them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from serving_conformance.base.features import Substitution
from serving_conformance.cluster.conditions import allocatable_count
from serving_conformance.cluster.kube import Ref
from serving_conformance.manifests.design import kserve_gateway
from serving_conformance.manifests.model import ManifestSet
from serving_conformance.manifests.workloads import GPU_RESOURCE, as_list, as_mapping
from serving_conformance.providers.kind import SIMULATED_GPU_LABEL

KSERVE_CONTROLLER_IMAGE = "kserve/kserve-controller"
KSERVE_WEBHOOK = "inferenceservice.serving.kserve.io"
# Images of this suite's own stand-ins, as its kind provider leaves them on a cluster.
SUITE_IMAGE_PREFIXES = ("localhost/serving-conformance/", "serving-conformance.local/")


class Reads(Protocol):
    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]: ...

    def get(self, ref: Any) -> dict[str, Any] | None: ...


@dataclass
class Installed:
    info: dict[str, str] = field(default_factory=dict)
    substitutions: list[Substitution] = field(default_factory=list)


def _containers(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = as_mapping(as_mapping(as_mapping(obj.get("spec")).get("template")).get("spec"))
    return [as_mapping(c) for c in as_list(spec.get("containers"))]


def kserve_manager(kube: Reads, namespace: str, version: str, found: Installed) -> None:
    wanted = f"{KSERVE_CONTROLLER_IMAGE}:v{version}"
    platform = f"KServe {version}'s released controller image ({wanted})"
    for deployment in kube.list("apps/v1", "Deployment", namespace=namespace):
        for container in _containers(deployment):
            image = str(container.get("image") or "")
            if KSERVE_CONTROLLER_IMAGE in image or (container.get("name") == "manager" and "kserve" in image):
                found.info["kserveManager"] = image
                if not image.endswith(wanted) and f"{wanted}@" not in image:
                    here = f"{image} (found on the cluster" + (", built by this suite)" if
                                                             image.startswith(SUITE_IMAGE_PREFIXES) else ")")
                    found.substitutions.append(Substitution("kserve-manager", platform, here))
                return
    for webhook in kube.list("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"):
        ours = as_mapping(webhook.get("metadata")).get("name") == KSERVE_WEBHOOK
        for hook in as_list(webhook.get("webhooks")):
            url = as_mapping(as_mapping(hook).get("clientConfig")).get("url")
            if url and (ours or "kserve-webhook-server" in str(as_mapping(hook).get("name", ""))):
                found.info["kserveManager"] = f"outside the cluster (webhooks at {url})"
                found.substitutions.append(Substitution(
                    "kserve-manager", platform, f"a KServe manager outside the cluster, its webhooks at {url}"))
                return
    found.info["kserveManager"] = f"not found in namespace {namespace}"


def gateway(kube: Reads, manifests: ManifestSet, found: Installed) -> None:
    namespace, name = kserve_gateway(manifests)
    live = kube.get(Ref("gateway.networking.k8s.io/v1", "Gateway", name, namespace))
    if live is None:
        found.info["gateway"] = f"Gateway {namespace}/{name} not found"
        return
    class_name = str(as_mapping(live.get("spec")).get("gatewayClassName") or "")
    cls = kube.get(Ref("gateway.networking.k8s.io/v1", "GatewayClass", class_name)) or {}
    controller = str(as_mapping(cls.get("spec")).get("controllerName") or "unknown")
    found.info["gateway"] = f"Gateway {namespace}/{name}: class {class_name}, controller {controller}"
    declared = manifests.find("Gateway", name, namespace)
    platform_class = str(as_mapping(declared.spec).get("gatewayClassName") or "") if declared is not None else ""
    if platform_class and platform_class != class_name:
        found.substitutions.append(Substitution(
            "gateway", f"GatewayClass {platform_class}, as the manifests name it",
            f"GatewayClass {class_name} (controller {controller}), found on the cluster"))


def gpus(kube: Reads, found: Installed) -> None:
    nodes = kube.list("v1", "Node")
    with_gpus = {n["metadata"]["name"]: allocatable_count(n, GPU_RESOURCE) for n in nodes
                 if allocatable_count(n, GPU_RESOURCE) > 0}
    if not with_gpus:
        found.info["gpuNodes"] = "none"
        return
    found.info["gpuNodes"] = ", ".join(f"{n} ({c} {GPU_RESOURCE})" for n, c in sorted(with_gpus.items()))
    plugins = sorted({f"{d['metadata'].get('namespace')}/{d['metadata']['name']}"
                      for d in kube.list("apps/v1", "DaemonSet") if "device-plugin" in d["metadata"]["name"]})
    found.info["gpuDevicePlugins"] = ", ".join(plugins) or "none as a DaemonSet"
    simulated = sorted(n["metadata"]["name"] for n in nodes
                       if as_mapping(n["metadata"].get("labels")).get(SIMULATED_GPU_LABEL) == "true")
    if simulated:
        found.substitutions.append(Substitution(
            "gpu", "nodes with NVIDIA GPUs",
            f"simulated {GPU_RESOURCE} on {', '.join(simulated)} (labelled {SIMULATED_GPU_LABEL}: no GPU exists)"))


def installed(kube: Reads, manifests: ManifestSet, namespace: str, version: str) -> Installed:
    found = Installed()
    kserve_manager(kube, namespace, version, found)
    gateway(kube, manifests, found)
    gpus(kube, found)
    return found

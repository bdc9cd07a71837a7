"""What an existing cluster already runs of the platform: named in the report, and where it is not
what the platform runs (a cluster kept from a kind run of this suite, a manager outside the
cluster, simulated GPUs, another gateway) a stand-in like any other.

Read once, after the platform is checked or installed: KServe's manager (its image and version, or
where its webhooks point when it runs outside the cluster), the Gateway KServe attaches its routes
to (its class and that class's controller, and whether the suite's own Traefik serves it), the GPU
nodes with the device plugins that advertise them, the pod network the suite's kind set up, and
the suite's own images the manifests' are mapped to (a tiny model; a vLLM built from
--engine-version, whose version check is then circular).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from serving_conformance.base.features import Substitution
from serving_conformance.cluster.conditions import allocatable_count
from serving_conformance.cluster.kube import Ref
from serving_conformance.cluster.releases import TRAEFIK_CONTROLLER
from serving_conformance.manifests.design import kserve_gateway
from serving_conformance.manifests.model import ManifestSet
from serving_conformance.manifests.workloads import GPU_RESOURCE, as_list, as_mapping
from serving_conformance.platform.installer import INSTALLED_BY_LABEL
from serving_conformance.providers.kind import SIMULATED_GPU_LABEL, pod_network_substitutions
from serving_conformance.toolchain.images import LOCAL_REGISTRY, MODELCAR_IMAGE, VLLM_IMAGE

KSERVE_CONTROLLER_IMAGE = "kserve/kserve-controller"
KSERVE_WEBHOOK = "inferenceservice.serving.kserve.io"
# Images of this suite's own stand-ins, as its kind provider leaves them on a cluster.
SUITE_IMAGE_PREFIXES = (f"{LOCAL_REGISTRY}/", "serving-conformance.local/")
SUITE_MODEL_IMAGES = (VLLM_IMAGE, MODELCAR_IMAGE)


class Reads(Protocol):
    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]: ...

    def get(self, ref: Any) -> dict[str, Any] | None: ...


@dataclass
class Installed:
    info: dict[str, str] = field(default_factory=dict)
    substitutions: list[Substitution] = field(default_factory=list)
    circular: dict[str, str] = field(default_factory=dict)


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
        return
    if as_mapping(as_mapping(cls.get("metadata")).get("labels")).get(INSTALLED_BY_LABEL) == "true":
        # The suite made this class for the implementation it installed (--install-platform).
        declared_class = manifests.find("GatewayClass", class_name)
        wanted = str(as_mapping(declared_class.spec).get("controllerName") or "") if declared_class else ""
        if wanted != controller:
            found.substitutions.append(Substitution(
                "gateway", f"the platform's implementation of GatewayClass {class_name}"
                + (f" (controller {wanted})" if wanted else ""),
                f"controller {controller}, installed by this suite (--install-platform), serving class {class_name}"))
        return
    traefik = suite_images(kube, "traefik") if controller == TRAEFIK_CONTROLLER else []
    if traefik:
        found.substitutions.append(Substitution(
            "gateway", f"the platform's implementation of GatewayClass {class_name}",
            f"Traefik built by this suite ({', '.join(traefik)}), found on the cluster serving class {class_name}"))


def suite_images(kube: Reads, name: str) -> list[str]:
    """Images of the suite's own build named `name` that the cluster's Deployments run."""
    return sorted({str(c.get("image")) for d in kube.list("apps/v1", "Deployment") for c in _containers(d)
                   if str(c.get("image") or "").startswith(tuple(f"{p}{name}" for p in SUITE_IMAGE_PREFIXES))})


def nodes(kube: Reads, found: Installed) -> None:
    listed = kube.list("v1", "Node")
    gpus(listed, kube, found)
    found.substitutions += pod_network_substitutions(listed)


def gpus(listed: list[dict[str, Any]], kube: Reads, found: Installed) -> None:
    with_gpus = {n["metadata"]["name"]: allocatable_count(n, GPU_RESOURCE) for n in listed
                 if allocatable_count(n, GPU_RESOURCE) > 0}
    if not with_gpus:
        found.info["gpuNodes"] = "none"
        return
    found.info["gpuNodes"] = ", ".join(f"{n} ({c} {GPU_RESOURCE})" for n, c in sorted(with_gpus.items()))
    plugins = sorted({f"{d['metadata'].get('namespace')}/{d['metadata']['name']}"
                      for d in kube.list("apps/v1", "DaemonSet") if "device-plugin" in d["metadata"]["name"]})
    found.info["gpuDevicePlugins"] = ", ".join(plugins) or "none as a DaemonSet"
    simulated = sorted(n["metadata"]["name"] for n in listed
                       if as_mapping(n["metadata"].get("labels")).get(SIMULATED_GPU_LABEL) == "true")
    if simulated:
        found.substitutions.append(Substitution(
            "gpu", "nodes with NVIDIA GPUs",
            f"simulated {GPU_RESOURCE} on {', '.join(simulated)} (labelled {SIMULATED_GPU_LABEL}: no GPU exists)"))


def mapped_suite_images(targets: Iterable[str], found: Installed) -> None:
    """The manifests' images mapped (--image-map) to the suite's own builds: those carry its tiny
    model, and its vLLM is the version --engine-version asked for."""
    ours = sorted({t.removeprefix("oci://") for t in targets if t.removeprefix("oci://").startswith(SUITE_MODEL_IMAGES)})
    if not ours:
        return
    found.substitutions.append(Substitution(
        "model", "the model each pod names (hub model, volume or modelcar)",
        f"a tiny random-weight Qwen2 built by this suite, in the images the manifests are mapped to ({', '.join(ours)})"))
    engines = [t for t in ours if t.startswith(VLLM_IMAGE)]
    if engines:
        found.circular["engine-version"] = (
            f"the pods run this suite's vLLM image ({', '.join(engines)}), built at the version the suite was "
            "asked for (--engine-version): the version it reports is the one the suite asked for")


def installed(kube: Reads, manifests: ManifestSet, namespace: str, version: str,
              mapped_to: Iterable[str] = ()) -> Installed:
    found = Installed()
    kserve_manager(kube, namespace, version, found)
    gateway(kube, manifests, found)
    nodes(kube, found)
    mapped_suite_images(mapped_to, found)
    return found

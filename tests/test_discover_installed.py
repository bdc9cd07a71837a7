"""On an existing cluster, the report names what it found installed (KServe's manager image and
version, the Gateway's class and controller, GPU nodes and their device plugins), and what of it
is not what the platform runs is a stand-in. Read from objects as the API server returns them;
`--cluster existing` runs it on every cluster it is pointed at."""

from __future__ import annotations

from typing import Any

from serving_conformance.base.data import DEFAULT_MANIFESTS
from serving_conformance.manifests.load import load_manifests
from serving_conformance.platform.discover import installed


class Objects:
    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects

    def list(self, api_version, kind, namespace=None, label_selector=None):
        return [o for o in self.objects if o["kind"] == kind
                and (namespace is None or o["metadata"].get("namespace") == namespace)]

    def get(self, ref):
        return next((o for o in self.objects if o["kind"] == ref.kind and o["metadata"]["name"] == ref.name
                     and o["metadata"].get("namespace") == ref.namespace), None)


def manager(image: str) -> dict:
    return {"kind": "Deployment", "metadata": {"name": "kserve-controller-manager", "namespace": "kserve"},
            "spec": {"template": {"spec": {"containers": [{"name": "manager", "image": image}]}}}}


GATEWAY = {"kind": "Gateway", "metadata": {"name": "kserve-ingress-gateway", "namespace": "kserve"},
           "spec": {"gatewayClassName": "traefik"}}
CLASS = {"kind": "GatewayClass", "metadata": {"name": "traefik"}, "spec": {"controllerName": "traefik.io/gateway-controller"}}


def node(name: str, gpus: int, simulated: bool = False) -> dict:
    labels = {"serving-conformance.dev/simulated-gpu": "true"} if simulated else {}
    return {"kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"allocatable": {"nvidia.com/gpu": str(gpus)} if gpus else {}}}


MANIFESTS = load_manifests(DEFAULT_MANIFESTS)  # their Gateway names class agentgateway


def test_the_platforms_own_components_are_named_and_not_stand_ins():
    found = installed(Objects([manager("docker.io/kserve/kserve-controller:v0.19.0"), node("gpu-1", 1),
                               {"kind": "DaemonSet", "metadata": {"name": "nvidia-device-plugin-daemonset",
                                                                  "namespace": "gpu-operator"}}]),
                      MANIFESTS, "kserve", "0.19.0")
    assert found.info["kserveManager"] == "docker.io/kserve/kserve-controller:v0.19.0"
    assert found.info["gpuNodes"] == "gpu-1 (1 nvidia.com/gpu)"
    assert found.info["gpuDevicePlugins"] == "gpu-operator/nvidia-device-plugin-daemonset"
    assert found.info["gateway"] == "Gateway kserve/kserve-ingress-gateway not found"
    assert found.substitutions == []


def test_the_suites_own_stand_ins_left_on_a_cluster_are_stand_ins_there_too():
    found = installed(Objects([manager("localhost/serving-conformance/kserve-manager:v0.19.0"), GATEWAY, CLASS,
                               node("worker", 4, simulated=True)]), MANIFESTS, "kserve", "0.19.0")
    subjects = {s.subject: s for s in found.substitutions}
    assert set(subjects) == {"kserve-manager", "gateway", "gpu"}
    assert "built by this suite" in subjects["kserve-manager"].here
    assert subjects["gateway"].platform == "GatewayClass agentgateway, as the manifests name it"
    assert "traefik.io/gateway-controller" in subjects["gateway"].here
    assert "no GPU exists" in subjects["gpu"].here


def test_a_manager_outside_the_cluster_is_found_by_its_webhooks():
    webhook = {"kind": "MutatingWebhookConfiguration", "metadata": {"name": "inferenceservice.serving.kserve.io"},
               "webhooks": [{"name": "inferenceservice.kserve-webhook-server.defaulter",
                             "clientConfig": {"url": "https://127.0.0.1:9443/mutate"}}]}
    found = installed(Objects([webhook]), MANIFESTS, "kserve", "0.19.0")
    assert found.info["kserveManager"] == "outside the cluster (webhooks at https://127.0.0.1:9443/mutate)"
    assert [s.subject for s in found.substitutions] == ["kserve-manager"]


def traefik(image: str) -> dict:
    return {"kind": "Deployment", "metadata": {"name": "traefik", "namespace": "traefik"},
            "spec": {"template": {"spec": {"containers": [{"name": "traefik", "image": image}]}}}}


SAME_CLASS = {**GATEWAY, "spec": {"gatewayClassName": "agentgateway"}}
SAME_CLASS_TRAEFIK = {**CLASS, "metadata": {"name": "agentgateway"}}


def test_the_suites_own_traefik_serving_the_platforms_class_is_a_gateway_stand_in():
    ours = installed(Objects([SAME_CLASS, SAME_CLASS_TRAEFIK, traefik("localhost/serving-conformance/traefik:v3.6.2")]),
                     MANIFESTS, "kserve", "0.19.0")
    assert [(s.subject, s.platform) for s in ours.substitutions] == [
        ("gateway", "the platform's implementation of GatewayClass agentgateway")]
    assert "Traefik built by this suite (localhost/serving-conformance/traefik:v3.6.2)" in ours.substitutions[0].here
    # The same class served by a Traefik the platform runs itself is the platform's gateway.
    theirs = installed(Objects([SAME_CLASS, SAME_CLASS_TRAEFIK, traefik("docker.io/library/traefik:v3.6.2")]),
                       MANIFESTS, "kserve", "0.19.0")
    assert theirs.info["gateway"] == ("Gateway kserve/kserve-ingress-gateway: class agentgateway, "
                                      "controller traefik.io/gateway-controller")
    assert theirs.substitutions == []


def test_the_pod_network_the_suites_kind_set_up_is_a_stand_in_on_an_existing_cluster():
    labelled = {**node("worker", 0), "metadata": {"name": "worker", "labels": {
        "serving-conformance.dev/pod-network": "cni-ptp"}}}
    assert [s.subject for s in installed(Objects([labelled]), MANIFESTS, "kserve", "0.19.0").substitutions] == ["pod-network"]
    assert installed(Objects([node("worker", 0)]), MANIFESTS, "kserve", "0.19.0").substitutions == []


def test_manifests_mapped_to_the_suites_own_images_rest_on_its_model_and_its_engine_version_is_circular():
    vllm = "localhost/serving-conformance/vllm-cpu@sha256:" + "a" * 64
    modelcar = "oci://localhost/serving-conformance/modelcar-qwen@sha256:" + "b" * 64
    found = installed(Objects([]), MANIFESTS, "kserve", "0.19.0", [vllm, modelcar])
    assert [s.subject for s in found.substitutions] == ["model"]
    assert "localhost/serving-conformance/modelcar-qwen@sha256" in found.substitutions[0].here
    assert list(found.circular) == ["engine-version"] and vllm in found.circular["engine-version"]
    # Only the modelcar is the suite's: its model stands in, the engine is the platform's image.
    only_model = installed(Objects([]), MANIFESTS, "kserve", "0.19.0", [modelcar, "mirror.example/vllm/vllm-openai:v0.23.0"])
    assert [s.subject for s in only_model.substitutions] == ["model"] and only_model.circular == {}
    mirrored = installed(Objects([]), MANIFESTS, "kserve", "0.19.0", ["mirror.example/vllm/vllm-openai:v0.23.0"])
    assert mirrored.substitutions == [] and mirrored.circular == {}


def test_a_gateway_class_the_suite_made_for_the_implementation_it_installed_is_a_stand_in():
    """--install-platform on an existing cluster: Envoy Gateway from its release serves the
    manifests' class, through a GatewayClass the suite made (labelled so). The manifests declare no
    GatewayClass of their own, so the class's controller is the platform's choice, not this one."""
    made = {**CLASS, "metadata": {"name": "agentgateway", "labels": {"serving-conformance.dev/installed": "true"}},
            "spec": {"controllerName": "gateway.envoyproxy.io/gatewayclass-controller"}}
    ours = installed(Objects([SAME_CLASS, made]), MANIFESTS, "kserve", "0.19.0")
    assert [(s.subject, s.platform) for s in ours.substitutions] == [
        ("gateway", "the platform's implementation of GatewayClass agentgateway")]
    assert "gateway.envoyproxy.io/gatewayclass-controller, installed by this suite" in ours.substitutions[0].here
    # The same class, made by the platform: its own gateway, no stand-in.
    theirs = installed(Objects([SAME_CLASS, {**made, "metadata": {"name": "agentgateway"}}]), MANIFESTS, "kserve",
                       "0.19.0")
    assert theirs.substitutions == []

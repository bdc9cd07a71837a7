"""A real kind cluster through the provider (marker `kind`: minutes, root, a container engine, the
node image built): every node Ready, the workers' simulated GPUs (the device plugin assigning
devices), pod-to-pod traffic across nodes
and a Service by VIP and DNS name, then the cluster is deleted and nothing of it is left.

    python -m serving_conformance.prepare --for-cluster kind --no-engine   # once
    python -m pytest tests -m kind
"""

from __future__ import annotations

import secrets
import time

import pytest

from serving_conformance.base import proc
from serving_conformance.base.features import Feature
from serving_conformance.cluster.kube import Kube, Ref
from serving_conformance.providers import kindnet
from serving_conformance.providers.kind import (
    GPU_RESOURCE,
    KIND_WORKERS,
    SIMULATED_GPU_LABEL,
    SIMULATED_GPUS_PER_WORKER,
    KindProvider,
)
from serving_conformance.providers.kindgpu import SIMULATED_ENV
from serving_conformance.toolchain import kindnode

from .conftest import base_settings

pytestmark = pytest.mark.kind


def gpu_pod(name: str, image: str, gpus: int) -> dict:
    script = f"env | grep -E '^(NVIDIA_VISIBLE_DEVICES|{SIMULATED_ENV})=' | sort > /dev/termination-log"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"restartPolicy": "Never", "containers": [{
                "name": "c", "image": image, "command": ["sh", "-c", script],
                "resources": {"limits": {GPU_RESOURCE: str(gpus)}}}]}}


def check_device_plugin_allocates(kube: Kube, image: str) -> None:
    """The kubelet's device manager assigns the plugin's devices (and their environment) to a
    container; a pod asking for more than a worker has is left unscheduled for that reason."""
    kube.apply(gpu_pod("two-gpus", image, 2))
    done = kube.wait_for(Ref("v1", "Pod", "two-gpus", "default"),
                         lambda p: (p or {}).get("status", {}).get("phase") in ("Succeeded", "Failed"), 180, "two-gpus done")
    message = done["status"]["containerStatuses"][0]["state"]["terminated"]["message"].split()
    devices = message[0].removeprefix("NVIDIA_VISIBLE_DEVICES=").split(",")
    assert len(devices) == 2 and all(d.startswith("simulated-gpu-") for d in devices), message
    assert message[1] == f"{SIMULATED_ENV}=true", message
    too_many = SIMULATED_GPUS_PER_WORKER + 1
    kube.apply(gpu_pod("too-many-gpus", image, too_many))
    kube.wait_for(Ref("v1", "Pod", "too-many-gpus", "default"),
                  lambda p: any(c.get("reason") == "Unschedulable" and f"Insufficient {GPU_RESOURCE}" in c.get("message", "")
                                for c in (p or {}).get("status", {}).get("conditions") or []),
                  120, f"a pod asking {too_many} GPUs unschedulable")


def test_kind_boots_nodes_ready_with_cross_node_pod_traffic_and_is_deleted(tmp_path):
    name = f"sc-selftest-{secrets.token_hex(3)}"
    settings = base_settings(cluster="kind", cluster_name=name)
    lines: list[str] = []
    provider = KindProvider(settings, tmp_path, log=lines.append, with_platform=False)
    started = time.monotonic()
    cluster = provider.start()
    try:
        assert cluster.created and cluster.context == f"kind-{name}"
        assert cluster.features == {Feature.SERVING, Feature.GATEWAY, Feature.KUBELET, Feature.ENGINE_VERSION}
        assert {s.subject for s in cluster.substitutions} == {"gpu", "pod-network"}
        kube = Kube(cluster.kubeconfig, cluster.context)
        nodes = kube.list("v1", "Node")
        assert len(nodes) == 1 + KIND_WORKERS
        for node in nodes:
            ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
            assert ready and ready[0]["status"] == "True", node["metadata"]["name"]
            assert node["status"]["nodeInfo"]["kubeletVersion"] == f"v{settings.expect.kubernetes_version}"
        workers = [n for n in nodes if "node-role.kubernetes.io/control-plane" not in n["metadata"]["labels"]]
        assert len(workers) == KIND_WORKERS
        for node in workers:
            assert node["metadata"]["labels"][SIMULATED_GPU_LABEL] == "true"
            assert node["status"]["allocatable"][GPU_RESOURCE] == str(SIMULATED_GPUS_PER_WORKER)
            # a vLLM CPU pod requests 2 CPUs: only a worker has them all
            assert node["status"]["allocatable"]["cpu"] in ("2", "2000m")
        # by digest, as the platform's manifests name their images: the preload records the digest reference
        busybox = kindnode.build_node_image(log=lines.append).reference(kindnode.busybox_image_name())
        seen = kindnet.verify_pod_network(kube, busybox, 180, lines.append)
        assert len(seen["nodes"]) == 2
        check_device_plugin_allocates(kube, busybox)
    finally:
        provider.stop(cluster)
    assert name not in proc.run([provider.kind_binary(), "get", "clusters"], step="kind get clusters").split()
    left = proc.run(["docker", "ps", "-a", "--filter", f"label=io.x-k8s.kind.cluster={name}", "-q"], step="docker ps")
    assert not left.strip(), f"containers of {name} left behind: {left}"
    print(f"kind cluster {name}: started in {cluster.info['readySeconds']}s (kind create {cluster.info['createSeconds']}s), "
          f"checked and deleted in {time.monotonic() - started:.1f}s; {seen}")

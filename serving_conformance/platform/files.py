"""Reading a file inside a pod's container: through the kubelet (exec) where a real one runs, or
from the testbed's node agent, which reports what an exec would read (it plays the kubelet)."""

from __future__ import annotations

import hashlib
import json

from kubernetes import client as k8s_client
from kubernetes.stream import stream

from serving_conformance.base.features import Feature
from serving_conformance.cluster.base import Cluster
from serving_conformance.cluster.kube import Kube, Ref

# Written by the testbed's node agent (providers/local/agent.py).
AGENT_FILES_ANNOTATION = "serving-conformance.dev/file-sha256"


class PodFiles:
    def __init__(self, kube: Kube, cluster: Cluster, timeout: float) -> None:
        self.kube = kube
        self.cluster = cluster
        self.timeout = timeout

    def sha256(self, namespace: str, pod: str, container: str, path: str) -> str:
        """The SHA-256 of a file as `container` of `pod` sees it."""
        if self.cluster.offers(Feature.KUBELET):
            core = k8s_client.CoreV1Api(self.kube.api_client)
            text = stream(core.connect_get_namespaced_pod_exec, pod, namespace, container=container,
                          command=["cat", path], stderr=False, stdin=False, stdout=True, tty=False,
                          _request_timeout=self.timeout)
            return hashlib.sha256(str(text).encode()).hexdigest()
        key = f"{container}:{path}"
        found = self.kube.wait_for(
            Ref("v1", "Pod", pod, namespace),
            lambda o: key in json.loads(((o or {}).get("metadata", {}).get("annotations") or {}).get(AGENT_FILES_ANNOTATION, "{}")),
            self.timeout, f"the node agent's digest of {key}",
        )
        return json.loads(found["metadata"]["annotations"][AGENT_FILES_ANNOTATION])[key]

"""Reading a file inside a pod's container: through the kubelet (exec) where a real one runs, or
from the testbed's node agent, which reports what an exec would read (it plays the kubelet)."""

from __future__ import annotations

import hashlib
import json

import yaml
from kubernetes import client as k8s_client
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL

from serving_conformance.base.features import Feature
from serving_conformance.cluster.base import Cluster
from serving_conformance.cluster.kube import Kube, Ref

# Written by the testbed's node agent (providers/local/agent.py).
AGENT_FILES_ANNOTATION = "serving-conformance.dev/file-sha256"


class PodFileError(RuntimeError):
    """The file could not be read in the container (the message says why); never a digest of nothing."""


def exec_status(text: str | None) -> tuple[bool, str]:
    """Whether an exec's status (its error channel: a metav1.Status) says it succeeded, and why not."""
    try:
        status = yaml.safe_load(text or "") or {}
    except yaml.YAMLError:
        return False, f"an unreadable exec status {text!r}"
    if not isinstance(status, dict):
        return False, f"an unreadable exec status {text!r}"
    if status.get("status") == "Success":
        return True, ""
    causes = (status.get("details") or {}).get("causes") or []
    codes = [c.get("message") for c in causes if c.get("reason") == "ExitCode"]
    return False, (f"exit code {codes[0]}" if codes else str(status.get("message") or "no status from the kubelet"))


class PodFiles:
    def __init__(self, kube: Kube, cluster: Cluster, timeout: float) -> None:
        self.kube = kube
        self.cluster = cluster
        self.timeout = timeout

    def sha256(self, namespace: str, pod: str, container: str, path: str) -> str:
        """The SHA-256 of a file as `container` of `pod` sees it."""
        if self.cluster.offers(Feature.KUBELET):
            return hashlib.sha256(self._read_by_exec(namespace, pod, container, path).encode()).hexdigest()
        key = f"{container}:{path}"
        found = self.kube.wait_for(
            Ref("v1", "Pod", pod, namespace),
            lambda o: key in json.loads(((o or {}).get("metadata", {}).get("annotations") or {}).get(AGENT_FILES_ANNOTATION, "{}")),
            self.timeout, f"the node agent's digest of {key}",
        )
        return json.loads(found["metadata"]["annotations"][AGENT_FILES_ANNOTATION])[key]

    def _read_by_exec(self, namespace: str, pod: str, container: str, path: str) -> str:
        core = k8s_client.CoreV1Api(self.kube.api_client)
        response = stream(core.connect_get_namespaced_pod_exec, pod, namespace, container=container,
                          command=["cat", path], stderr=True, stdin=False, stdout=True, tty=False,
                          _preload_content=False, _request_timeout=self.timeout)
        try:
            response.run_forever(timeout=self.timeout)
            out, err = response.read_stdout(), response.read_stderr()
            ok, why = exec_status(response.read_channel(ERROR_CHANNEL))
        finally:
            response.close()
        if not ok:
            raise PodFileError(f"`cat {path}` in container {container} of pod {namespace}/{pod} failed ({why})"
                               + (f": {err.strip()[-500:]}" if err.strip() else ""))
        return str(out)

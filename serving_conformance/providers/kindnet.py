"""The pod network of a kind cluster built here: what kindnetd would do, done once after create.

kindnetd (kind's default CNI) is not on the Go module proxy, so clusters are created with
`disableDefaultCNI` and, once kube-controller-manager has given every node its podCIDR, each node
gets (all through `docker exec` argument lists):
- a CNI conflist for its own podCIDR: the CNI plugins' ptp + host-local + portmap, the shape of the
  config kindnetd writes;
- a route to every other node's podCIDR via that node's address on kind's docker network;
- one masquerade rule for pod traffic leaving the pod network (pod-to-pod traffic keeps its
  addresses, as the Kubernetes network model asks).

`verify_pod_network` proves it: a busybox Deployment with one replica on each of two nodes, pod to
pod across nodes, and the Service's VIP and DNS name, then everything is deleted.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from serving_conformance.cluster.kube import Kube, Ref

Runner = Callable[..., subprocess.CompletedProcess]
Log = Callable[[str], None]

CONFLIST_DIR = "/etc/cni/net.d"
CONFLIST_NAME = "10-serving-conformance.conflist"
IPAM_DATA_DIR = "/run/cni-ipam-state"
MASQUERADE_COMMENT = "serving-conformance: pod traffic leaving the pod network"
NETCHECK_PORT = 8080
FETCH_TIMEOUT_S = 5
POLL_S = 1.0


class PodNetworkError(RuntimeError):
    """The pod network could not be set up or does not carry traffic; the message says where."""


@dataclass(frozen=True)
class NodeRoute:
    name: str
    address: str  # on kind's docker network
    pod_cidr: str


def conflist(pod_cidr: str) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "serving-conformance",
        "plugins": [
            {"type": "ptp", "ipMasq": False, "mtu": 1500,
             "ipam": {"type": "host-local", "dataDir": IPAM_DATA_DIR, "ranges": [[{"subnet": pod_cidr}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def masquerade_rule(pod_subnet: str) -> list[str]:
    return ["POSTROUTING", "-s", pod_subnet, "!", "-d", pod_subnet, "-m", "comment", "--comment",
            MASQUERADE_COMMENT, "-j", "MASQUERADE"]


def node_routes(kube: Kube, names: Sequence[str], timeout: float) -> list[NodeRoute]:
    """Each node's address and podCIDR, waiting (bounded) for the controller manager to allocate them."""
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, NodeRoute] = {}
        for node in kube.list("v1", "Node"):
            name = node["metadata"]["name"]
            spec, status = node.get("spec") or {}, node.get("status") or {}
            address = next((a["address"] for a in status.get("addresses") or () if a.get("type") == "InternalIP"), None)
            if name in names and spec.get("podCIDR") and address:
                found[name] = NodeRoute(name, address, spec["podCIDR"])
        if len(found) == len(names):
            return [found[n] for n in names]
        if time.monotonic() >= deadline:
            missing = sorted(set(names) - set(found))
            raise PodNetworkError(f"nodes without a podCIDR or address after {timeout:.0f}s: {', '.join(missing)} "
                                  "(kube-controller-manager allocates podCIDRs from the cluster's podSubnet)")
        time.sleep(POLL_S)


def configure_nodes(run: Runner, docker: str, routes: Sequence[NodeRoute], pod_subnet: str, timeout: float) -> None:
    """Write each node's conflist, routes to the other nodes' podCIDRs, and the masquerade rule."""

    def exec_(node: str, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = run([docker, "exec", *(["-i"] if input is not None else []), node, *args], timeout=timeout,
                     input=input)
        if check and result.returncode != 0:
            raise PodNetworkError(f"on node {node}: {' '.join(args)} failed (exit {result.returncode}): "
                                  f"{(result.stdout + result.stderr).strip()[-1000:]}")
        return result

    for node in routes:
        staged = f"{CONFLIST_DIR}/.{CONFLIST_NAME}.tmp"  # CNI reads *.conflist only: renamed into place whole
        exec_(node.name, "mkdir", "-p", CONFLIST_DIR)
        exec_(node.name, "tee", staged, input=json.dumps(conflist(node.pod_cidr), indent=2) + "\n")
        exec_(node.name, "mv", staged, f"{CONFLIST_DIR}/{CONFLIST_NAME}")
        for other in routes:
            if other.name != node.name:
                exec_(node.name, "ip", "route", "replace", other.pod_cidr, "via", other.address)
        rule = masquerade_rule(pod_subnet)
        if exec_(node.name, "iptables", "-t", "nat", "-C", *rule, check=False).returncode != 0:
            exec_(node.name, "iptables", "-t", "nat", "-A", *rule)


# --- the check -----------------------------------------------------------------------------------


def _exec_in_pod(kube: Kube, namespace: str, pod: str, command: Sequence[str], timeout: float) -> tuple[int, str]:
    from kubernetes import client as k8s_client
    from kubernetes.stream import stream

    api = k8s_client.CoreV1Api(kube.api_client)
    response = stream(api.connect_get_namespaced_pod_exec, pod, namespace, command=list(command), stderr=True,
                      stdin=False, stdout=True, tty=False, _preload_content=False)
    response.run_forever(timeout=timeout)
    output = response.read_stdout() + response.read_stderr()
    code = response.returncode
    response.close()
    return (code if code is not None else 124), output


def _fetch(url: str) -> list[str]:
    # busybox's own timeout: Debian's static busybox 1.35 wget crashes (SIGSEGV) with its -T option
    return ["timeout", str(FETCH_TIMEOUT_S), "wget", "-qO-", url]


def _netcheck_objects(namespace: str, image: str) -> list[dict[str, Any]]:
    labels = {"app": "netcheck"}
    script = f"hostname > /www/index.html && exec httpd -f -p {NETCHECK_PORT} -h /www"
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "netcheck", "namespace": namespace},
         "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels},
             "spec": {
                 # one replica per node: pod-to-pod traffic has to cross nodes
                 "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                     {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}]}},
                 "containers": [{
                     "name": "httpd", "image": image, "imagePullPolicy": "Never", "command": ["sh", "-c", script],
                     "ports": [{"containerPort": NETCHECK_PORT}],
                     "readinessProbe": {"httpGet": {"path": "/", "port": NETCHECK_PORT}, "periodSeconds": 1},
                     # A Guaranteed pod with a tiny CPU limit, like KServe's modelcar sidecar: it must
                     # start first time (the node's cgroupfs driver; see toolchain.kindnode).
                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                                   "limits": {"cpu": "10m", "memory": "16Mi"}},
                 }],
             }}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "netcheck", "namespace": namespace},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": NETCHECK_PORT}]}},
    ]


def _available(replicas: int) -> Callable[[Mapping[str, Any] | None], bool]:
    def check(obj: Mapping[str, Any] | None) -> bool:
        return bool(obj) and ((obj or {}).get("status") or {}).get("availableReplicas", 0) >= replicas
    return check


def verify_pod_network(kube: Kube, image: str, timeout: float, log: Log) -> dict[str, Any]:
    """Pod to pod across two nodes, and a Service by VIP and by DNS name; the objects are deleted
    afterwards. Returns what was seen (and how long it took)."""
    namespace = f"sc-netcheck-{secrets.token_hex(3)}"
    started = time.monotonic()
    objects = _netcheck_objects(namespace, image)
    kube.apply(objects[0])
    try:
        kube.wait_for(Ref("v1", "ServiceAccount", "default", namespace), lambda o: o is not None, timeout,
                      "the namespace's default ServiceAccount")
        for obj in objects[1:]:
            kube.apply(obj)
        kube.wait_for(Ref("apps/v1", "Deployment", "netcheck", namespace), _available(2), timeout,
                      "2 netcheck replicas available")
        ready = time.monotonic() - started
        pods = [p for p in kube.list("v1", "Pod", namespace=namespace, label_selector="app=netcheck")
                if (p.get("status") or {}).get("phase") == "Running"]
        nodes = {p["spec"]["nodeName"] for p in pods}
        if len(pods) != 2 or len(nodes) != 2:
            raise PodNetworkError(f"expected 2 running netcheck pods on 2 nodes, got {len(pods)} on {sorted(nodes)}")
        seen: dict[str, Any] = {"namespace": namespace, "nodes": sorted(nodes), "readySeconds": round(ready, 1)}
        for source, target in ((pods[0], pods[1]), (pods[1], pods[0])):
            url = f"http://{target['status']['podIP']}:{NETCHECK_PORT}/"
            code, out = _exec_in_pod(kube, namespace, source["metadata"]["name"], _fetch(url), 30)
            if code != 0 or out.strip() != target["metadata"]["name"]:
                raise PodNetworkError(f"pod {source['metadata']['name']} on {source['spec']['nodeName']} could not "
                                      f"reach pod {target['metadata']['name']} on {target['spec']['nodeName']} at "
                                      f"{url} (exit {code}): {out.strip()[-500:]}")
        service = kube.get(Ref("v1", "Service", "netcheck", namespace)) or {}
        vip = (service.get("spec") or {}).get("clusterIP")
        names = {p["metadata"]["name"] for p in pods}
        for host in (vip, f"netcheck.{namespace}.svc.cluster.local"):
            code, out = _exec_in_pod(kube, namespace, pods[0]["metadata"]["name"],
                                     _fetch(f"http://{host}/"), 30)
            if code != 0 or out.strip() not in names:
                raise PodNetworkError(f"the Service netcheck at {host} did not answer from a pod (exit {code}): "
                                      f"{out.strip()[-500:]}")
        restarts = {p["metadata"]["name"]: sum(c.get("restartCount", 0) for c in p["status"].get("containerStatuses") or ())
                    for p in kube.list("v1", "Pod", namespace=namespace, label_selector="app=netcheck")}
        if any(restarts.values()):
            raise PodNetworkError(f"netcheck pods restarted (a 10m CPU limit must start first time): {restarts}")
        seen.update({"serviceIP": vip, "checkedSeconds": round(time.monotonic() - started, 1)})
        log(f"pod network: pod to pod across {', '.join(sorted(nodes))}, Service {vip} and its DNS name answer")
        return seen
    finally:
        kube.delete(Ref("v1", "Namespace", namespace))
        kube.wait_for(Ref("v1", "Namespace", namespace), lambda o: o is None, timeout, "the netcheck namespace deleted")

"""`--cluster kind`: a real kind cluster, offline, from a node image built here.

- kind is the cached build of the pinned version (toolchain.kindnode), else the `kind` on PATH
  (at least KIND_MIN), else it is built;
- the node image is built here from published sources (`toolchain.kindnode.ensure_node_image`,
  cached; the platform's images can be preloaded into it), never `kindest/node`;
- the cluster is the control plane and KIND_WORKERS workers, on kind's own docker network
  (`toolchain.docker.KIND_NETWORK`), from `data/kind/cluster.yaml` (no default CNI), kubeconfig in
  the run directory; once kind has created it, each node gets its CNI config and routes
  (`providers.kindnet`, the stand-in for kindnetd), and the workers' kubelets advertise simulated
  GPUs from a device plugin (`providers.kindgpu`);
- a failed create removes the half cluster; a cluster of the same name that already exists is
  reused as it is and never deleted; `--keep-cluster` keeps what the suite created;
- the platform (`with_platform`, the default) is offline too: its images are built here and
  preloaded (`providers.kind_platform`), or pulled under their published names from a local
  mirror (`--kind-images mirror`, `providers.kind_mirror`), KServe's release is rendered here, Traefik serves the
  Gateway API, and the manifests' vLLM images and oci:// models are mapped to the ones built here;
  the platform's pods and CoreDNS go to the control plane, so each worker keeps its CPUs for a
  vLLM pod.

Every command is an argument list run through the process layer (`Runner`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from serving_conformance.base import proc, versions
from serving_conformance.base.data import KIND_CONFIG
from serving_conformance.base.progress import progress
from serving_conformance.base.quantity import parse_quantity
from serving_conformance.base.settings import Settings
from serving_conformance.cluster.base import (
    Cluster,
    Component,
    Feature,
    ProviderError,
    Substitution,
    built_engine_circular,
)
from serving_conformance.cluster.conditions import is_true
from serving_conformance.cluster.kube import Kube, Ref
from serving_conformance.cluster.releases import CONTROL_PLANE_LABEL, TRAEFIK_CONTROLLER, BuiltHere, on_control_plane
from serving_conformance.manifests.fit import FITTED, Room
from serving_conformance.manifests.workloads import GPU_RESOURCE
from serving_conformance.providers import kind_mirror, kindgpu, kindnet
from serving_conformance.providers.kind_platform import PlatformImages, build_platform_images
from serving_conformance.toolchain import docker, kindnode

Runner = Callable[..., subprocess.CompletedProcess]
Log = Callable[[str], None]
NodeImageBuilder = Callable[[Sequence[Path]], str]

# The cluster's size: the control plane's pods request about 860m, so on a 2-core machine only a
# node without them has the 2 allocatable CPUs a vLLM CPU pod requests.
KIND_WORKERS = 2
SIMULATED_GPUS_PER_WORKER = 4
SIMULATED_GPU_LABEL = "serving-conformance.dev/simulated-gpu"
POD_NETWORK_LABEL = "serving-conformance.dev/pod-network"
POD_NETWORK_VALUE = "cni-ptp"
FIELD_MANAGER = "serving-conformance-kind"


def run_command(args: list[str], *, env: Mapping[str, str] | None = None, timeout: float | None = None,
                input: str | None = None) -> subprocess.CompletedProcess:
    return proc.attempt(args, timeout=timeout, env=env, input=input)


def version_tuple(text: str) -> tuple[int, ...]:
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    if not match:
        raise ValueError(f"no version in {text!r}")
    return tuple(int(x) for x in match.groups())


def docker_engine_available(run: Runner = run_command) -> bool:
    if shutil.which("docker") is None:
        return False
    return run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=30).returncode == 0


def cluster_config(workers: int = KIND_WORKERS) -> dict[str, Any]:
    """The shipped cluster config with `workers` worker nodes added."""
    config = yaml.safe_load(KIND_CONFIG.read_text())
    config["nodes"] = [*config.get("nodes", []), *({"role": "worker"} for _ in range(workers))]
    return config


def simulated_gpu_substitution(workers: Sequence[str]) -> Substitution:
    return Substitution(
        "gpu", "nodes with NVIDIA GPUs",
        f"{SIMULATED_GPUS_PER_WORKER} {GPU_RESOURCE} on each kind worker ({', '.join(workers)}), advertised by a "
        "device plugin of this suite's (no GPU exists; containers get simulated device IDs)")


def pod_network_substitution() -> Substitution:
    return Substitution(
        "pod-network", "the cluster's own pod network (kind's default: kindnetd)",
        f"CNI plugins v{versions.KIND_CNI_PLUGINS} ptp + host-local per node, with routes between the nodes "
        "set by the suite")


def pod_network_substitutions(nodes: Sequence[Mapping[str, Any]]) -> list[Substitution]:
    """The pod-network stand-in where nodes carry the label this provider puts on the nodes it sets
    the network of (a cluster it made, whoever uses it later)."""
    labelled = any(((n.get("metadata") or {}).get("labels") or {}).get(POD_NETWORK_LABEL) == POD_NETWORK_VALUE
                   for n in nodes)
    return [pod_network_substitution()] if labelled else []


class KindProvider:
    name = "kind"

    def __init__(
        self, settings: Settings, run_dir: Path, run: Runner = run_command, log: Log = progress,
        node_image: NodeImageBuilder | None = None, extra_images: Sequence[Path] = (),
        workers: int = KIND_WORKERS, with_platform: bool = True,
    ) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.run = run
        self.log = log
        self.node_image = node_image or (lambda extra: kindnode.ensure_node_image(extra, log=log))
        self.extra_images = tuple(extra_images)
        self.workers = workers
        self.kubeconfig = run_dir / "kind-kubeconfig.yaml"
        self._kind: str | None = None
        self.with_platform = with_platform
        self.platform: PlatformImages | None = None

    # --- the platform, built here -----------------------------------------------------------

    def platform_images(self) -> PlatformImages:
        if self.platform is None:
            traefik = versions.traefik_for(self.settings.expect.gateway_api_version)
            self.platform = build_platform_images(self.settings.local_engine, traefik, self.log)
        return self.platform

    @property
    def mirrored(self) -> bool:
        return self.with_platform and self.settings.kind_images == "mirror"

    def release_source(self) -> BuiltHere | None:
        if not self.with_platform:
            return None
        return self.platform_images().release_source(self.settings.kserve_namespace)

    def image_map_for(self, resources: Sequence[Any]) -> dict[str, str]:
        return self.platform_images().image_map_for(resources) if self.with_platform else {}

    def _with_platform(self, cluster: Cluster) -> None:
        if self.with_platform:
            # No cert-manager: the release rendered here carries its webhook certificate.
            cluster.runs = {Component.CERT_MANAGER}
            cluster.gateway_controller = TRAEFIK_CONTROLLER
            cluster.substitutions += self.platform_images().substitutions()

    # --- tools ------------------------------------------------------------------------------

    def kind_binary(self) -> str:
        """The cached kind, else kind on PATH (if recent enough), else a build of the pinned one."""
        if self._kind is None:
            cached = kindnode.cached_kind()
            if cached is not None:
                self._kind = str(cached)
            elif shutil.which("kind") is not None:
                result = self.run(["kind", "version"], timeout=60)
                try:
                    found = version_tuple(result.stdout)
                except ValueError as exc:
                    raise ProviderError(f"cannot read the kind version from `kind version`: {result.stdout!r}") from exc
                if found < version_tuple(versions.KIND_MIN):
                    raise ProviderError(f"kind {'.'.join(map(str, found))} is older than the {versions.KIND_MIN} "
                                        "this suite needs; upgrade kind or remove it from PATH (the suite then "
                                        f"builds kind {versions.KIND})")
                self._kind = "kind"
            else:
                if shutil.which("go") is None:
                    raise ProviderError(f"kind is neither built nor on PATH, and building kind {versions.KIND} needs Go: "
                                        "run `python -m serving_conformance.prepare --for-cluster kind`")
                self.log(f"building kind {versions.KIND}")
                self._kind = str(kindnode.ensure_kind(self.log))
        return self._kind

    def _kind_cmd(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, "KIND_EXPERIMENTAL_DOCKER_NETWORK": docker.KIND_NETWORK}
        return self.run([self.kind_binary(), *args], env=env, timeout=timeout)

    def check_tools(self) -> str:
        kind = self.kind_binary()
        if not docker_engine_available(self.run):
            raise ProviderError("kind needs a running container engine and `docker info` fails here: "
                                "`python -m serving_conformance.prepare --for-cluster kind` sets one up "
                                "(root, Debian), or start yours")
        return self.run([kind, "version"], timeout=60).stdout.strip()

    # --- start / stop ---------------------------------------------------------------------------

    def start(self) -> Cluster:
        started = time.monotonic()
        kind_version = self.check_tools()
        timeouts = self.settings.timeouts
        try:
            docker.ensure_network(timeouts=timeouts)
        except (docker.EngineError, proc.CommandError) as exc:
            raise ProviderError(str(exc)) from exc
        name = self.settings.cluster_name
        existing = self._kind_cmd("get", "clusters", timeout=60).stdout.split()
        info: dict[str, Any] = {"kind": kind_version, "reused": name in existing}
        if name in existing:
            result = self._kind_cmd("get", "kubeconfig", "--name", name, timeout=60)
            if result.returncode != 0:
                raise ProviderError(f"kind cannot give the kubeconfig of {name!r}: {result.stderr.strip()}")
            self.kubeconfig.write_text(result.stdout)
            cluster = self._cluster(name, created=False, info=info)
            self._describe_reused(cluster)
            self._with_platform(cluster)
            self.log(f"kind cluster {name} exists: reused as it is (and never deleted)")
            return cluster
        self.run_dir.mkdir(parents=True, exist_ok=True)
        preloaded = self.with_platform and not self.mirrored
        extra = [*self.extra_images, *(self.platform_images().layouts() if preloaded else ())]
        image = self.node_image(extra)
        info["nodeImage"] = image
        wanted = cluster_config(self.workers)
        if self.mirrored:
            try:
                served = kind_mirror.serve(self.platform_images(), image, self.run_dir, self.log,
                                           timeouts.docker_command)
            except BaseException:
                kind_mirror.stop(self.run_dir)
                raise
            self.platform, image = served.platform, served.node_image
            wanted = kind_mirror.with_mirror(wanted, served.certs)
            info["nodeImage"] = image
            info["imageSource"] = (f"local mirror {served.addresses[0]} (the nodes' pulls) and {served.addresses[1]} "
                                   "(kind's node image, pulled by the container engine)")
        elif self.with_platform:
            info["imageSource"] = "built here, preloaded in the node image"
        config = self.run_dir / "kind-cluster.yaml"
        config.write_text(yaml.safe_dump(wanted, sort_keys=False))
        self.log(f"creating kind cluster {name}: control plane + {self.workers} workers, node image {image}")
        create_started = time.monotonic()
        cluster = self._cluster(name, created=True, info=info)
        try:
            result = self._kind_cmd("create", "cluster", "--name", name, "--config", str(config), "--image", image,
                                    "--kubeconfig", str(self.kubeconfig), timeout=timeouts.cluster_create)
            if result.returncode != 0:
                raise ProviderError(f"kind could not create cluster {name!r}:\n"
                                    f"{(result.stdout + result.stderr).strip()[-2000:]}")
            info["createSeconds"] = round(time.monotonic() - create_started, 1)
            self.finish(cluster)
        except BaseException:
            # A failed or interrupted create can leave a half cluster behind; nothing has recorded it yet.
            self._delete_after_failure(name)
            kind_mirror.stop(self.run_dir)
            raise
        self._with_platform(cluster)
        info["readySeconds"] = round(time.monotonic() - started, 1)
        self.log(f"kind cluster {name} ready in {info['readySeconds']}s (kind create {info['createSeconds']}s)")
        return cluster

    def _cluster(self, name: str, created: bool, info: dict[str, Any]) -> Cluster:
        return Cluster(
            provider=self.name, name=name, kubeconfig=self.kubeconfig, context=f"kind-{name}", created=created,
            # No pod-network: from the suite, Services are reached by port-forward.
            features=self.features(), info=info,
            circular=(built_engine_circular(self.settings.local_engine, self.settings.expect.engine_version,
                                            "the kind cluster's pods (images built here)") if self.with_platform else {}),
            # Each worker has the CPUs of one vLLM pod (the platform's pods are on the control plane).
            engine_pods_at_once=self.workers if self.with_platform else None,
        )

    def features(self) -> set[str]:
        features = {Feature.SERVING, Feature.GATEWAY, Feature.KUBELET}
        # The vLLM image built here is the version the design names, unless asked for another.
        if not self.with_platform or self.settings.local_engine == self.settings.expect.engine_version:
            features.add(Feature.ENGINE_VERSION)
        return features

    def finish(self, cluster: Cluster) -> None:
        """After `kind create`: the pod network (kindnetd's stand-in), every node Ready, the
        simulated GPUs on the workers, and the default ServiceAccount (pods are refused before)."""
        timeouts = self.settings.timeouts
        nodes = self._kind_cmd("get", "nodes", "--name", cluster.name, timeout=60).stdout.split()
        if len(nodes) != 1 + self.workers:
            raise ProviderError(f"kind reports nodes {nodes} for {cluster.name}, expected 1 + {self.workers} workers")
        kube = Kube(cluster.kubeconfig, cluster.context)
        routes = kindnet.node_routes(kube, nodes, timeouts.kind_nodes_ready)
        pod_subnet = cluster_config(0)["networking"]["podSubnet"]
        kindnet.configure_nodes(self.run, "docker", routes, pod_subnet, timeouts.docker_command)
        for node in nodes:
            kube.wait_for(Ref("v1", "Node", node), lambda n: is_true(n, "Ready"), timeouts.kind_nodes_ready, f"node {node} Ready")
        listed = {n["metadata"]["name"]: n for n in kube.list("v1", "Node")}
        workers = [n for n in nodes if not _is_control_plane(listed.get(n, {}))]
        for node in nodes:
            labels = {POD_NETWORK_LABEL: POD_NETWORK_VALUE}
            if node in workers:
                labels.update({SIMULATED_GPU_LABEL: "true", "nvidia.com/gpu.present": "true"})
            kube.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "labels": labels}},
                       manager=FIELD_MANAGER)
        kindgpu.advertise(self.run, kube, workers, GPU_RESOURCE, SIMULATED_GPUS_PER_WORKER, timeouts.kind_nodes_ready,
                          timeouts.docker_command, self.log)
        cluster.room = worker_room([listed[n] for n in workers]).to_json()
        kube.wait_for(Ref("v1", "ServiceAccount", "default", "default"), lambda o: o is not None,
                      timeouts.kind_nodes_ready, "the default ServiceAccount")
        coredns = Ref("apps/v1", "Deployment", "coredns", "kube-system")
        if self.with_platform:
            # CoreDNS requests CPU: on the control plane, so that each worker keeps its 2 CPUs.
            pod: dict[str, Any] = {}
            on_control_plane(pod)
            kube.apply({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "coredns", "namespace": "kube-system"},
                        "spec": {"template": {"spec": pod}}}, manager=FIELD_MANAGER)
        kube.wait_for(coredns, lambda d: is_true(d, "Available"), timeouts.kind_nodes_ready, "CoreDNS available")
        cluster.info["nodes"] = {r.name: {"address": r.address, "podCIDR": r.pod_cidr} for r in routes}
        cluster.substitutions = [simulated_gpu_substitution(workers), pod_network_substitution()]

    def _describe_reused(self, cluster: Cluster) -> None:
        """A reused cluster is described by what its nodes carry (a cluster this suite made
        earlier and kept is labelled so), and its workers give the room a pod has."""
        try:
            nodes = Kube(cluster.kubeconfig, cluster.context).list("v1", "Node")
        except Exception as exc:  # unreachable: the installer reports it
            self.log(f"cannot read the nodes of {cluster.name}: {exc}")
            return
        cluster.substitutions = self._reused_substitutions(nodes)
        workers = [n for n in nodes if not _is_control_plane(n)]
        if workers:
            cluster.room = worker_room(workers).to_json()

    def _reused_substitutions(self, nodes: Sequence[Mapping[str, Any]]) -> list[Substitution]:
        labels = {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in nodes}
        result = []
        simulated = sorted(n for n, lab in labels.items() if lab.get(SIMULATED_GPU_LABEL) == "true")
        if simulated:
            result.append(simulated_gpu_substitution(simulated))
        return result + pod_network_substitutions(nodes)

    def start_components(self, cluster: Cluster, kube: object, manifests: object) -> None:
        """kind runs nothing of the platform itself: the installer installs all of it."""

    def _delete(self, name: str) -> None:
        result = self._kind_cmd("delete", "cluster", "--name", name, "--kubeconfig", str(self.kubeconfig),
                                timeout=self.settings.timeouts.cluster_create)
        if result.returncode != 0:
            raise ProviderError(f"kind could not delete cluster {name!r}: {(result.stdout + result.stderr).strip()[-1000:]}")

    def _delete_after_failure(self, name: str) -> None:
        try:
            self._delete(name)
        except ProviderError as exc:  # the failure that brought us here is the one to report
            self.log(str(exc))

    def stop(self, cluster: Cluster | None) -> None:
        if kind_mirror.stop(self.run_dir):
            self.log("local mirror stopped")
        if cluster is None or not cluster.created:
            return
        if self.settings.keep_cluster:
            self.log(f"kind cluster {cluster.name} kept: `{self.kind_binary()} get kubeconfig --name {cluster.name}` "
                     "gives its kubeconfig; `kind delete cluster --name` removes it")
            return
        self._delete(cluster.name)


def _is_control_plane(node: Mapping[str, Any]) -> bool:
    return CONTROL_PLANE_LABEL in ((node.get("metadata") or {}).get("labels") or {})


def worker_room(workers: Sequence[Mapping[str, Any]]) -> Room:
    """The smallest allocatable cpu and memory among the workers (Node objects): every worker of a
    kind cluster reports this machine's cores and memory, which a pod of the manifests may ask more of."""
    smallest: dict[str, str] = {}
    for node in workers:
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        for resource in FITTED:
            value = allocatable.get(resource)
            if value is not None and (resource not in smallest
                                      or parse_quantity(value) < parse_quantity(smallest[resource])):
                smallest[resource] = str(value)
    return Room(smallest, "a kind worker")

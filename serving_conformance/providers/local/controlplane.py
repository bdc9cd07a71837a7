"""The testbed's control plane: etcd, kube-apiserver, controller-manager and scheduler, run from
local binaries by kwokctl's binary runtime, all inside the run directory.

kwok's controller is started too but manages no node (its node selector matches nothing): the
testbed's own node agent plays the kubelet, so that pod readiness follows the real processes.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from serving_conformance.base import proc
from serving_conformance.toolchain.go import TestbedBinaries

KWOK_API = "config.kwok.x-k8s.io/v1alpha1"
# No node carries this annotation, so kwok manages no node and no pod.
UNMANAGED_SELECTOR = "serving-conformance.dev/kwok-managed=true"


# `kwokctl delete cluster` gets this long; components left after it are killed by recorded PID.
DELETE_TIMEOUT_S = 30.0


class ControlPlaneError(RuntimeError):
    pass


@dataclass(frozen=True)
class ControlPlane:
    name: str
    workdir: Path

    @property
    def cluster_dir(self) -> Path:
        return self.workdir / "clusters" / self.name

    @property
    def kubeconfig(self) -> Path:
        return self.cluster_dir / "kubeconfig.yaml"

    def pids(self) -> dict[str, int]:
        result = {}
        for path in sorted((self.cluster_dir / "pids").glob("*.pid")):
            try:
                result[path.stem] = int(path.read_text().strip())
            except (OSError, ValueError):
                continue
        return result


def _config(binaries: TestbedBinaries, workdir: Path) -> str:
    kwokctl = {
        "apiVersion": KWOK_API,
        "kind": "KwokctlConfiguration",
        "options": {
            "runtime": "binary",
            "kubeApiserverBinary": str(binaries.kube_apiserver),
            "kubeControllerManagerBinary": str(binaries.kube_controller_manager),
            "kubeSchedulerBinary": str(binaries.kube_scheduler),
            "kubectlBinary": str(binaries.kubectl),
            "kwokControllerBinary": str(binaries.kwok),
            "etcdBinary": str(binaries.etcd),
            # Admission on, or the API server starts with no admission plugins and so no webhooks.
            "kubeAdmission": True,
            "kubeAuthorization": True,
            "bindAddress": "127.0.0.1",
            "cacheDir": str(workdir / "cache"),
            "nodeLeaseDurationSeconds": 40,
        },
    }
    kwok = {
        "apiVersion": KWOK_API,
        "kind": "KwokConfiguration",
        "options": {"manageAllNodes": False, "manageNodesWithAnnotationSelector": UNMANAGED_SELECTOR},
    }
    return yaml.safe_dump_all([kwokctl, kwok], sort_keys=False)


def _env(binaries: TestbedBinaries, workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env[proc.RUN_ENV] = str(workdir.parent)  # the components inherit it: found even without records
    env["KWOK_WORKDIR"] = str(workdir)
    env["KWOK_KUBECTL_BINARY"] = str(binaries.kubectl)
    return env


def start(binaries: TestbedBinaries, run_dir: Path, name: str, timeout: float) -> ControlPlane:
    workdir = run_dir / "kwok"
    workdir.mkdir(parents=True, exist_ok=True)
    config = run_dir / "kwokctl.yaml"
    config.write_text(_config(binaries, workdir))
    plane = ControlPlane(name, workdir)
    args = [
        str(binaries.kwokctl), "create", "cluster",
        "--name", name,
        "--config", str(config),
        "--kubeconfig", "",  # never merge into ~/.kube/config
        "--wait", f"{int(timeout)}s",
    ]
    result = subprocess.run(args, env=_env(binaries, workdir), capture_output=True, text=True, timeout=timeout + 30)
    if result.returncode != 0:
        stop(binaries, plane)
        raise ControlPlaneError(f"kwokctl could not start the control plane:\n{(result.stdout + result.stderr)[-3000:]}")
    wait_ready(plane, time.monotonic() + timeout)
    return plane


def _ssl_context(plane: ControlPlane) -> ssl.SSLContext:
    pki = plane.cluster_dir / "pki"
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return context


def server_url(plane: ControlPlane) -> str:
    data = yaml.safe_load(plane.kubeconfig.read_text())
    return data["clusters"][0]["cluster"]["server"]


def wait_ready(plane: ControlPlane, deadline: float) -> None:
    """`kwokctl create` can return before the API server serves; poll /readyz until it does."""
    last = ""
    while time.monotonic() < deadline:
        try:
            url = server_url(plane) + "/readyz"
            with urllib.request.urlopen(url, context=_ssl_context(plane), timeout=5) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError, KeyError, yaml.YAMLError) as exc:
            last = str(exc)
        time.sleep(0.2)  # the API server offers nothing to watch before it is up
    raise ControlPlaneError(f"the API server did not become ready: {last}; logs in {plane.cluster_dir / 'logs'}")


def stop(binaries: TestbedBinaries, plane: ControlPlane) -> None:
    """Delete the cluster; then make sure no component survives (kill by recorded PID)."""
    pids = plane.pids()
    proc.attempt(
        [str(binaries.kwokctl), "delete", "cluster", "--name", plane.name, "--kubeconfig", ""],
        env=_env(binaries, plane.workdir), timeout=DELETE_TIMEOUT_S,
    )
    for component, pid in pids.items():
        # Only while the PID still runs that component: a reused PID is never hit.
        if proc.running(pid) and component in " ".join(proc.cmdline(pid)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

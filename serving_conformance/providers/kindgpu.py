"""Simulated GPUs on kind's workers, advertised by a device plugin the way a GPU node's are.

The plugin (`toolchain/gpu-device-plugin`, built here against the kubelet's device plugin API)
runs in each worker as a systemd unit, registers `nvidia.com/gpu` with that worker's kubelet, and
lists its devices; the kubelet's device manager then puts them in the node's capacity and assigns
them to containers, which get the assigned IDs in NVIDIA_VISIBLE_DEVICES and
SERVING_CONFORMANCE_SIMULATED_GPU=true. The unit goes with the node container.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from serving_conformance.cluster.base import ProviderError
from serving_conformance.cluster.conditions import allocatable_count
from serving_conformance.cluster.kube import Kube, Ref
from serving_conformance.toolchain import go

Runner = Callable[..., subprocess.CompletedProcess]
Log = Callable[[str], None]

UNIT = "serving-conformance-gpu-device-plugin"
NODE_BINARY = f"/usr/local/bin/{UNIT}"
SIMULATED_ENV = "SERVING_CONFORMANCE_SIMULATED_GPU"


def plugin_binary(log: Log) -> Path:
    """The device plugin, built once and cached like the node image's binaries."""
    result = go.ensure_components([go.GPU_DEVICE_PLUGIN], log=log)[go.GPU_DEVICE_PLUGIN]
    return result.directory / go.GPU_DEVICE_PLUGIN


def start_plugin(run: Runner, node: str, binary: Path, resource: str, count: int, timeout: float) -> None:
    """Copy the plugin into the node and run it as a unit systemd restarts if it stops."""
    commands = [
        ["docker", "cp", str(binary), f"{node}:{NODE_BINARY}"],
        ["docker", "exec", node, "systemd-run", f"--unit={UNIT}", "--property=Restart=always",
         NODE_BINARY, f"-resource={resource}", f"-count={count}"],
    ]
    for args in commands:
        result = run(args, timeout=timeout)
        if result.returncode != 0:
            raise ProviderError(f"starting the simulated GPUs' device plugin on {node}: {' '.join(args)} failed "
                                f"(exit {result.returncode}): {(result.stdout + result.stderr).strip()[-1000:]}")


def advertise(run: Runner, kube: Kube, workers: Sequence[str], resource: str, count: int,
              timeout: float, docker_timeout: float, log: Log) -> None:
    """Start the plugin on every worker, then wait until each kubelet reports the devices."""
    binary = plugin_binary(log)
    for node in workers:
        start_plugin(run, node, binary, resource, count, docker_timeout)
    for node in workers:
        kube.wait_for(Ref("v1", "Node", node), lambda n: allocatable_count(n, resource) == count, timeout,
                      f"{count} {resource} allocatable on {node} (the device plugin registered with its kubelet)")

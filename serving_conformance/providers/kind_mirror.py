"""`--kind-images mirror`: kind's nodes pull the platform's images under their published names from
a local mirror (`toolchain.mirror`), as a cluster pulls them where registries answer.

The mirror listens on the host's address on kind's network; the images built here are pushed to
it with the digests they were built with; every node's containerd reads registry hosts from
MIRROR_CONFIG_PATH, mounted from the run directory, where each host the images are named under
sends its pulls to the mirror first.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serving_conformance.cluster.base import ProviderError
from serving_conformance.providers.kind_platform import MIRROR_CONFIG_PATH, PlatformImages
from serving_conformance.toolchain import docker, mirror

Log = Callable[[str], None]


def mirror_host() -> str:
    """The host's address on kind's network (its bridge's gateway): the nodes reach the mirror there."""
    return str(next(ipaddress.ip_network(docker.KIND_NETWORK_SUBNET).hosts()))


def with_mirror(config: dict[str, Any], certs: Path) -> dict[str, Any]:
    """Every node's containerd reads registry hosts from MIRROR_CONFIG_PATH, mounted from `certs`."""
    config["containerdConfigPatches"] = [
        f'[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "{MIRROR_CONFIG_PATH}"\n']
    for node in config["nodes"]:
        node.setdefault("extraMounts", []).append(
            {"hostPath": str(certs), "containerPath": MIRROR_CONFIG_PATH, "readOnly": True})
    return config


def serve(platform: PlatformImages, run_dir: Path, log: Log) -> tuple[PlatformImages, Path]:
    """Start the mirror, push the platform's images under their published names, and write the
    nodes' registry hosts: the images as the nodes name them, and the directory to mount."""
    served = mirror.start(run_dir, mirror_host(), log)
    published = platform.published(served.address)
    started = time.monotonic()
    for built in published.images():
        pushed = mirror.push(served, built.path, built.name)
        if pushed != built.digest:
            raise ProviderError(f"the local mirror holds {built.name} as {pushed}, not as built ({built.digest})")
    log(f"platform images pushed to the local mirror under their published names in {time.monotonic() - started:.1f}s")
    certs = run_dir / "containerd-certs.d"
    for host, text in published.hosts_files().items():
        (certs / host).mkdir(parents=True, exist_ok=True)
        (certs / host / "hosts.toml").write_text(text)
    return published, certs

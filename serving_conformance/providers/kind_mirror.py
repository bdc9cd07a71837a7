"""`--kind-images mirror`: kind's node image and the platform's images are pulled under their
published names from a local mirror (`toolchain.mirror`), as they are pulled where registries answer.

One storage, two registries: the nodes' on the host's address on kind's network, and the container
engine's on loopback (the only address it pulls from over plain HTTP without being reconfigured).
The images built here are pushed with the digests they were built with; kind's node image goes to
the engine's side as `kindest/node`, untagged locally, and kind pulls it; every node's containerd
reads registry hosts from MIRROR_CONFIG_PATH, mounted from the run directory, where each host the
platform's images are named under sends its pulls to the mirror first.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving_conformance.base import proc, versions
from serving_conformance.cluster.base import ProviderError
from serving_conformance.providers.kind_platform import MIRROR_CONFIG_PATH, PlatformImages
from serving_conformance.toolchain import docker, mirror

Log = Callable[[str], None]
ENGINE_SIDE = "registry-engine"
# The node image's mirror name, recorded in the run directory: teardown may be another process's.
NODE_IMAGE_RECORD = "kind-node-image-from-mirror"
# kind's node image as kind publishes it (the tag: the Kubernetes it runs).
NODE_IMAGE_NAME = f"kindest/node:v{versions.KUBERNETES}"


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


@dataclass(frozen=True)
class Served:
    platform: PlatformImages  # the images as the nodes name them
    certs: Path  # the nodes' registry hosts, to mount at MIRROR_CONFIG_PATH
    node_image: str  # kind's node image as kind pulls it from the mirror
    addresses: tuple[str, str]  # the nodes' mirror, the container engine's


def serve(platform: PlatformImages, node_image: str, run_dir: Path, log: Log, docker_timeout: float) -> Served:
    """Start the mirror, push the platform's images and kind's node image under their published
    names, and write the nodes' registry hosts."""
    nodes_side = mirror.start(run_dir, mirror_host(), log)
    engine_side = mirror.start(run_dir, "127.0.0.1", log, name=ENGINE_SIDE)
    published = platform.published(nodes_side.address)
    started = time.monotonic()
    for built in published.images():
        pushed = mirror.push(nodes_side, built.path, built.name)
        if pushed != built.digest:
            raise ProviderError(f"the local mirror holds {built.name} as {pushed}, not as built ({built.digest})")
    node = f"{engine_side.address}/{NODE_IMAGE_NAME}"
    (run_dir / NODE_IMAGE_RECORD).write_text(node)
    for step in (["tag", node_image, node], ["push", "--quiet", node], ["rmi", node]):
        proc.run(["docker", *step], step=f"docker {step[0]} {node}", timeout=docker_timeout, error=ProviderError)
    log(f"kind's node image and the platform's images pushed to the local mirror under their published names "
        f"in {time.monotonic() - started:.1f}s")
    certs = run_dir / "containerd-certs.d"
    for host, text in published.hosts_files().items():
        (certs / host).mkdir(parents=True, exist_ok=True)
        (certs / host / "hosts.toml").write_text(text)
    return Served(published, certs, node, (nodes_side.address, engine_side.address))


def stop(run_dir: Path) -> bool:
    """Both registries stopped, and the node image's mirror name dropped from the engine: an untag
    (the image stays under the name it was built as), forced because the cluster's containers,
    kept or not yet deleted, were made from that name."""
    record = run_dir / NODE_IMAGE_RECORD
    if record.is_file():
        proc.attempt(["docker", "rmi", "--force", record.read_text().strip()], timeout=60)
        record.unlink()
    stopped = mirror.stop(run_dir, ENGINE_SIDE)
    return mirror.stop(run_dir) or stopped

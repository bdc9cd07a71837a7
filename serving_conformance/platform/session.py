"""One cluster per run, also under xdist.

The controller process makes a run directory and hands it to the workers. The first process that
needs the cluster creates it (and installs the platform) under a file lock and records it in
`<run>/cluster.json`; the others read that record. What the cluster offers is the provider's
features plus what is discovered once the platform is in (GPU nodes, Istio's API). The controller
alone tears down at the end: the run's objects and namespaces, then what the provider created.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from serving_conformance.base.proc import file_lock
from serving_conformance.base.settings import Settings
from serving_conformance.cluster.base import Cluster, Feature, ProviderError, Substitution
from serving_conformance.cluster.kube import Kube
from serving_conformance.manifests.images import ImageMap
from serving_conformance.manifests.model import ManifestSet
from serving_conformance.platform.installer import Installer
from serving_conformance.providers.choose import choose_provider

GPU_RESOURCE = "nvidia.com/gpu"
ISTIO_GROUP = "networking.istio.io"


def discover_features(kube: Kube) -> set[str]:
    """Features read off the cluster itself: GPU nodes and Istio's VirtualService API."""
    found: set[str] = set()
    nodes = kube.list("v1", "Node")
    if any(_allocatable_gpus(node) > 0 for node in nodes):
        found.add(Feature.GPU)
    if kube.served_versions(ISTIO_GROUP, "VirtualService"):
        found.add(Feature.ISTIO_API)
    return found


def _allocatable_gpus(node: dict) -> int:
    value = ((node.get("status") or {}).get("allocatable") or {}).get(GPU_RESOURCE, 0)
    try:
        return int(str(value))
    except ValueError:
        return 0


def image_substitutions(settings: Settings, cluster: Cluster, manifests: ManifestSet) -> list[Substitution]:
    """A stand-in for each image (or oci:// model) of the manifests that is deployed as another."""
    image_map = ImageMap(dict(settings.image_map)).merged(cluster.image_map)
    for resource in manifests.resources:
        image_map.apply(resource.body)
    return [Substitution("image", source, f"{target} (--image-map)" if source in dict(settings.image_map) else target,
                         (Feature.SERVING,))
            for source, target in sorted(image_map.used.items())]


class ClusterSession:
    def __init__(
        self, settings: Settings, manifests: ManifestSet, run_dir: Path, run_id: str, log: Callable[[str], None]
    ) -> None:
        self.settings = settings
        self.manifests = manifests
        self.run_dir = run_dir
        self.run_id = run_id
        self.log = log
        self.record = run_dir / "cluster.json"
        self.failure = run_dir / "cluster.failed"

    def kube(self, cluster: Cluster) -> Kube:
        return Kube(cluster.kubeconfig, cluster.context, self.run_dir / "discovery-cache.json")

    def cluster(self) -> Cluster:
        """The run's cluster, created and made ready by the first caller."""
        self.run_dir.mkdir(mode=0o700, exist_ok=True)
        with file_lock(self.run_dir / "cluster.lock"):
            if self.record.exists():
                return Cluster.from_json(self.record.read_text())
            if self.failure.exists():
                # Do not retry a failed start in every worker: report the first failure.
                raise ProviderError(self.failure.read_text())
            provider = choose_provider(self.settings, self.run_dir, self.log)
            try:
                cluster = provider.start()
                # Recorded before installing, so teardown removes it even if the install fails.
                self.record.write_text(cluster.to_json())
                kube = self.kube(cluster)
                source = getattr(provider, "release_source", lambda: None)()
                Installer(self.settings, cluster, kube, self.manifests, self.log, source).install(provider)
                cluster.features |= discover_features(kube)
                cluster.substitutions += image_substitutions(self.settings, cluster, self.manifests)
            except BaseException as exc:
                self.failure.write_text(f"{type(exc).__name__}: {exc}")
                raise
            self.record.write_text(cluster.to_json())
            return cluster

    def teardown_keeping_logs(self, artifacts: Path | None) -> None:
        """Teardown; first, when the run failed, keep the testbed's own logs with the diagnostics."""
        logs = self.run_dir / "logs"
        if artifacts is not None and logs.is_dir():
            target = artifacts / "testbed-logs"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(logs, target, symlinks=True)
            self.log(f"testbed logs kept in {target}")
        self.teardown()

    def teardown(self) -> None:
        """Controller only: remove the run's objects and whatever the provider created."""
        if not self.record.exists():
            return
        cluster = Cluster.from_json(self.record.read_text())
        try:
            installer = Installer(self.settings, cluster, self.kube(cluster), self.manifests, self.log)
            installer.remove_run_objects(self.run_id)
        except Exception as exc:  # keep going: the cluster itself must still be removed
            self.log(f"could not remove this run's objects: {exc}")
        provider = choose_provider(self.settings, self.run_dir, self.log, choice=cluster.provider)
        provider.stop(cluster)
        if cluster.created and not self.settings.keep_cluster:
            self.log(f"removed {cluster.provider} cluster {cluster.name}")
        elif cluster.created:
            self.log(f"kept {cluster.provider} cluster {cluster.name} (--keep-cluster); kubeconfig {cluster.kubeconfig}")

"""One cluster per run, also under xdist.

The controller process makes a run directory and hands it to the workers. The first process that
needs the cluster creates it (and installs the platform) under a file lock and records it in
`<run>/cluster.json`; the others read that record. What the cluster offers is the provider's
features plus what is discovered once the platform is in (GPU nodes, Istio's API). The controller
alone tears down at the end: the run's objects and namespaces, then what the provider created.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serving_conformance.base.proc import file_lock
from serving_conformance.base.redact import copy_redacted
from serving_conformance.base.settings import Settings
from serving_conformance.base.text import clip
from serving_conformance.cluster.base import Cluster, Feature, ProviderError, Substitution
from serving_conformance.cluster.conditions import allocatable_count
from serving_conformance.cluster.kube import RUN_LABEL, Kube, Ref
from serving_conformance.manifests.fit import Room, fitted_requests, modelcar_requests
from serving_conformance.manifests.images import ImageMap
from serving_conformance.manifests.model import ManifestSet
from serving_conformance.manifests.platform_config import CONFIGMAP_NAME
from serving_conformance.manifests.roles import is_platform
from serving_conformance.manifests.scale import scaled_workloads
from serving_conformance.manifests.workloads import GPU_RESOURCE
from serving_conformance.platform.deploy import secret_stand_ins
from serving_conformance.platform.discover import installed
from serving_conformance.platform.installer import Installer
from serving_conformance.providers.choose import choose_provider

ISTIO_GROUP = "networking.istio.io"


def discover_features(kube: Kube) -> set[str]:
    """Features read off the cluster itself: GPU nodes and Istio's VirtualService API."""
    found: set[str] = set()
    nodes = kube.list("v1", "Node")
    if any(allocatable_count(node, GPU_RESOURCE) > 0 for node in nodes):
        found.add(Feature.GPU)
    if kube.served_versions(ISTIO_GROUP, "VirtualService"):
        found.add(Feature.ISTIO_API)
    return found


def used_images(settings: Settings, cluster: Cluster, manifests: ManifestSet) -> dict[str, tuple[str, set[str]]]:
    """Each image (or oci:// model) of the manifests deployed as another: what replaces it, and
    the objects (idents) it was replaced in."""
    pairs = ImageMap(dict(settings.image_map)).merged(cluster.image_map).pairs
    used: dict[str, tuple[str, set[str]]] = {}
    for resource in manifests.resources:  # one map per object: which objects each mapping touches
        one = ImageMap(pairs)
        one.apply(resource.body)
        for source, target in one.used.items():
            used.setdefault(source, (target, set()))[1].add(resource.ident)
    return used


def image_substitutions(settings: Settings, used: dict[str, tuple[str, set[str]]]) -> list[Substitution]:
    """A stand-in for each image (or oci:// model) of the manifests that is deployed as another."""
    return [Substitution("image", source, f"{target} (--image-map)" if source in dict(settings.image_map) else target,
                         tuple(sorted(users)))
            for source, (target, users) in sorted(used.items())]


def with_modelcar(room: dict[str, Any], kube: Kube, kserve_namespace: str) -> dict[str, Any]:
    """The room with what the installed KServe adds beside an oci:// model, read from its
    inferenceservice-config as the controller reads it."""
    config = kube.get(Ref("v1", "ConfigMap", CONFIGMAP_NAME, kserve_namespace)) or {}
    try:
        storage = json.loads((config.get("data") or {}).get("storageInitializer") or "{}")
    except json.JSONDecodeError:
        storage = {}
    return {**room, "modelcar": modelcar_requests(storage if isinstance(storage, dict) else {})}


def request_substitutions(cluster: Cluster, manifests: ManifestSet) -> list[Substitution]:
    """A stand-in for each request of the serving workloads lowered to fit the cluster's nodes."""
    serving = [r for r in manifests.resources if not is_platform(r)]
    return [change.substitution() for change in fitted_requests(serving, Room.from_json(cluster.room))]


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
        return Kube(cluster.kubeconfig, cluster.context, self.run_dir / "discovery-cache.json",
                    request_timeout=self.settings.timeouts.api_request)

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
                # Stand-ins the provider has for the manifests' images (the user's --image-map wins).
                cluster.image_map = {**provider.image_map_for(self.manifests.resources), **cluster.image_map}
                # Recorded before installing, so teardown removes it even if the install fails.
                self.record.write_text(cluster.to_json())
                kube = self.kube(cluster)
                source = getattr(provider, "release_source", lambda: None)()
                Installer(self.settings, cluster, kube, self.manifests, self.log, source).install(provider)
                cluster.features |= discover_features(kube)
                used = used_images(self.settings, cluster, self.manifests)
                if cluster.provider == "existing":  # what it runs is the cluster's: named, stand-ins said so
                    found = installed(kube, self.manifests, self.settings.kserve_namespace,
                                      self.settings.expect.kserve_version, [t for t, _ in used.values()])
                    cluster.info.update(found.info)
                    cluster.substitutions += found.substitutions
                    cluster.circular.update(found.circular)
                cluster.substitutions += image_substitutions(self.settings, used)
                serving = [r for r in self.manifests.resources if not is_platform(r)]
                cluster.substitutions += [s.substitution() for s in scaled_workloads(serving, self.manifests)]
                cluster.substitutions += secret_stand_ins(self.manifests)
                if cluster.room:
                    cluster.room = with_modelcar(cluster.room, kube, self.settings.kserve_namespace)
                    cluster.substitutions += request_substitutions(cluster, self.manifests)
            except BaseException as exc:
                self.failure.write_text(f"{type(exc).__name__}: {exc}")
                raise
            self.record.write_text(cluster.to_json())
            return cluster

    def teardown_keeping_logs(self, artifacts: Path | None) -> bool:
        """Teardown; first, when the run failed, keep the testbed's own logs with the diagnostics
        (redacted: pod logs print the args, API key included)."""
        logs = self.run_dir / "logs"
        if artifacts is not None and logs.is_dir():
            target = artifacts / "testbed-logs"
            try:
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(logs, target, symlinks=True, copy_function=copy_redacted)
                self.log(f"testbed logs kept in {target}")
            except OSError as exc:  # the logs must never stop the teardown
                self.log(f"could not keep the testbed logs in {target}: {exc}")
        return self.teardown()

    def teardown(self) -> bool:
        """Controller only: remove the run's objects and whatever the provider created, within the
        `teardown` grace period. True when nothing the run started on this machine is left, so its
        run directory may go; objects left on a cluster are said so, and need no run directory."""
        if not self.record.exists():
            return True
        started = time.monotonic()
        grace = self.settings.timeouts.teardown
        cluster = Cluster.from_json(self.record.read_text())
        clean = objects_removed = True
        deleted_with_cluster = cluster.created and not self.settings.keep_cluster
        if deleted_with_cluster:
            self.log(f"the run's objects go with the {cluster.provider} cluster {cluster.name}")
        else:
            try:
                installer = Installer(self.settings, cluster, self.kube(cluster), self.manifests, self.log)
                installer.remove_run_objects(self.run_id, started + grace)
            except Exception as exc:  # keep going: what the provider created must still be removed
                objects_removed = False
                self.log(f"could not remove this run's objects (namespaces labelled {RUN_LABEL}={self.run_id}): "
                         f"{type(exc).__name__}: {clip(str(exc), 300)}")
        try:
            provider = choose_provider(self.settings, self.run_dir, self.log, choice=cluster.provider)
            provider.stop(cluster)
        except Exception as exc:
            clean = False
            self.log(f"could not stop what the {cluster.provider} provider started: {type(exc).__name__}: {exc}")
        if deleted_with_cluster and clean and objects_removed:
            self.log(f"removed {cluster.provider} cluster {cluster.name}")
        elif cluster.created and self.settings.keep_cluster:
            # A kubeconfig in the run directory goes with it: the provider says how to get one.
            where = "" if cluster.kubeconfig.is_relative_to(self.run_dir) else f"; kubeconfig {cluster.kubeconfig}"
            self.log(f"kept {cluster.provider} cluster {cluster.name} (--keep-cluster){where}")
        elapsed = time.monotonic() - started
        over = f", {elapsed - grace:.1f}s over the grace period" if elapsed > grace else ""
        complete = "" if clean and objects_removed else ", incomplete"
        self.log(f"teardown took {elapsed:.1f}s (grace {grace:.0f}s{over}){complete}")
        return clean

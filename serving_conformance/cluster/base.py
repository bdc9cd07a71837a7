"""What every cluster provider hands the suite, and what the suite may rely on.

A provider turns the cluster options into a `Cluster`: a kubeconfig and context, the features it
offers (Gateway API conformance's idea of `SupportedFeatures`), what of the platform it runs
itself, and what stands in there for what the platform really runs (`Substitution`s), so that no
result overstates what was proven. The run directory helpers live here too: both the session and
the local testbed use them.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from serving_conformance.base.features import Feature, Substitution

__all__ = ["Cluster", "Component", "Feature", "Provider", "ProviderError", "Substitution"]

RUN_DIR_PREFIX = "serving-conformance-"


class ProviderError(RuntimeError):
    """The cluster cannot be provided; the message says why and what to do."""


class Component(StrEnum):
    """Parts of the platform a provider may run itself; the installer installs the others."""

    GATEWAY_API_CRDS = "gateway-api-crds"
    CERT_MANAGER = "cert-manager"
    GATEWAY_CONTROLLER = "gateway-controller"
    KSERVE = "kserve"


@dataclass
class Cluster:
    provider: str
    name: str
    kubeconfig: Path
    context: str | None
    # True when the suite created it and so may delete it.
    created: bool
    features: set[str] = field(default_factory=set)
    # Components the provider runs itself (see Component); the installer installs the rest.
    runs: set[str] = field(default_factory=set)
    # The controllerName of the Gateway API implementation the provider runs, if it runs one.
    gateway_controller: str | None = None
    substitutions: list[Substitution] = field(default_factory=list)
    # Compared quantities whose expected side this cluster's own stand-ins made (an engine built
    # from --engine-version): checks of them are circular, never a plain pass.
    circular: dict[str, str] = field(default_factory=dict)
    # Images the provider built or mirrors, by the reference the manifests use (see --image-map).
    image_map: dict[str, str] = field(default_factory=dict)
    # How many vLLM pods the cluster holds at once (None: all the run needs). Where it is bounded,
    # the tests run grouped by workload and each workload goes once no later test needs it.
    engine_pods_at_once: int | None = None
    # Where a node allocates less than a workload's pod requests (kind on one machine), the room
    # one pod has (manifests.fit.Room as JSON): the deployer lowers requests to fit it.
    room: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def offers(self, feature: Feature) -> bool:
        return feature.value in self.features

    def to_json(self) -> str:
        data = asdict(self)
        data["kubeconfig"] = str(self.kubeconfig)
        data["features"] = sorted(self.features)
        data["runs"] = sorted(self.runs)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Cluster:
        data = json.loads(text)
        data["kubeconfig"] = Path(data["kubeconfig"])
        data["features"] = set(data.get("features") or ())
        data["runs"] = set(data.get("runs") or ())
        data["substitutions"] = [Substitution(s["subject"], s["platform"], s["here"], tuple(s.get("scope") or ()))
                                 for s in data.get("substitutions") or ()]
        return cls(**data)


def built_engine_circular(version: str, expected: str, where: str) -> dict[str, str]:
    """Where the suite itself built the engine the pods run at the expected version, the version
    they report is the one it asked for: engine-version checks there are circular."""
    if version != expected:
        return {}
    return {"engine-version": f"{where} run vLLM {version}, which the suite set up from --engine-version {expected}: "
                              "the version it reports is the one the suite asked for"}


class Provider(Protocol):
    name: str

    def start(self) -> Cluster:
        """Create or reach the cluster."""

    def start_components(self, cluster: Cluster, kube: Any, manifests: Any) -> None:
        """Start what `cluster.runs` names, once the installer has put their CRDs and
        configuration in place (the manifests under test say what the platform needs)."""

    def image_map_for(self, resources: Any) -> dict[str, str]:
        """Images (and oci:// models) of these manifests the provider deploys as others it has
        (a cluster that reaches no registry); empty where the manifests' own are pulled."""

    def release_source(self) -> Any:
        """Where the installer takes the platform's components from (None: the published releases)."""

    def stop(self, cluster: Cluster | None) -> None:
        """Remove what the provider created (never what it found)."""


# --- runs -------------------------------------------------------------------------------------


def run_dirs_root() -> Path:
    return Path(tempfile.gettempdir())


def new_run() -> tuple[Path, str]:
    """A run id and the path of its directory, created only when a cluster is first needed (a run
    of static tests leaves nothing behind, not even an empty directory)."""
    run_id = secrets.token_hex(4)
    return run_dirs_root() / f"{RUN_DIR_PREFIX}{run_id}", run_id


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")

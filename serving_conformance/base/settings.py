"""What one run is asked to check: the expected values and the options, as plain data.

Built from the command line by the plugin's options module; read by every layer below it.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from serving_conformance.base.timeouts import Timeouts

# The profiles of the report, in order; a gate requires them by these names.
PROFILES = ("STATIC", "ENGINE", "SERVING-CPU", "SERVING-GPU")
CLUSTER_PROVIDERS = ("auto", "kind", "existing", "local", "none")
KIND_IMAGE_SOURCES = ("built", "mirror")


SUCCESS = "success"
# --require-profile P:ran: the profile ran every case it collected, and nothing failed.
RAN = "ran"
REQUIREMENT_LEVELS = (SUCCESS, RAN)


@dataclass(frozen=True)
class Requirement:
    """--require-profile P (only `success` meets it) or P:ran."""

    profile: str
    level: str = SUCCESS

    @classmethod
    def parse(cls, text: str) -> Requirement:
        profile, _, level = text.partition(":")
        return cls(profile.strip().upper(), level.strip().lower() or SUCCESS)

    def __str__(self) -> str:
        return self.profile if self.level == SUCCESS else f"{self.profile}:{self.level}"


class Declared(Protocol):
    """What an expectation is matched on: a manifest object and the file it was written in."""

    @property
    def kind(self) -> str: ...
    @property
    def namespace(self) -> str | None: ...
    @property
    def name(self) -> str: ...
    @property
    def path(self) -> Path: ...


@dataclass(frozen=True)
class PathExpectation:
    """What one path of the design serves (an options file's `paths` entry): the objects it names
    (`Kind/namespace/name` or `Kind/name`, each part a glob) or the files under `files` (an
    absolute glob or directory). Unset values fall back to the run's."""

    served_model_name: str | None = None
    engine_version: str | None = None
    object: str | None = None
    files: str | None = None

    def matches(self, resource: Declared) -> bool:
        if self.object is not None:
            parts = self.object.split("/")
            kind, name = parts[0], parts[-1]
            namespace = parts[1] if len(parts) == 3 else "*"
            return (fnmatch.fnmatchcase(resource.kind, kind) and fnmatch.fnmatchcase(resource.name, name)
                    and fnmatch.fnmatchcase(resource.namespace or "", namespace))
        if self.files is not None:
            path = str(resource.path)
            return path == self.files or path.startswith(self.files.rstrip("/") + "/") \
                or fnmatch.fnmatchcase(path, self.files)
        return False

    def describe(self) -> str:
        return f"object {self.object}" if self.object is not None else f"files {self.files}"


@dataclass(frozen=True)
class Expectations:
    """The expected values the whole suite checks against (from the options, never from what runs)."""

    served_model_name: str
    engine_version: str
    kserve_version: str
    kubernetes_version: str
    gpu_slots: int
    # The Gateway API release and channel: --gateway-api-version, else the repository's own pin.
    gateway_api_version: str = "1.4.1"
    gateway_api_channel: str = "standard"
    # Per path of the design (the options file): the first entry that matches an object wins.
    paths: tuple[PathExpectation, ...] = ()

    def declared_path(self, resource: Declared) -> PathExpectation | None:
        """The options file's entry for this object, if one names it."""
        return next((p for p in self.paths if p.matches(resource)), None)

    def served_name_for(self, resource: Declared) -> str:
        declared = self.declared_path(resource)
        return (declared.served_model_name if declared else None) or self.served_model_name

    def engine_version_for(self, resource: Declared) -> str:
        declared = self.declared_path(resource)
        return (declared.engine_version if declared else None) or self.engine_version


@dataclass(frozen=True)
class Settings:
    manifests_dir: Path  # the first of manifests_dirs (where a single place is named)
    manifests_dirs: tuple[Path, ...]
    expect: Expectations
    kserve_namespace: str
    namespace_prefix: str
    timeouts: Timeouts
    report_path: Path | None
    required_profiles: tuple[Requirement, ...]
    cluster: str
    cluster_name: str
    kubeconfig: Path | None
    kube_context: str | None
    allowed_contexts: tuple[str, ...]
    keep_cluster: bool
    install_platform: bool
    require_gpu: bool
    artifacts_dir: Path
    local_pods: str
    # --image-map, as FROM=TO pairs (files already read): images reachable where the suite runs.
    image_map: tuple[tuple[str, str], ...]
    # The vLLM the suite runs itself (engine profile, testbed pods); None: the expected version.
    local_engine_version: str | None
    keep_logs: bool
    testbed_istio_crd: str
    # The platform's options file the expectations were read from, if any.
    options_file: Path | None = None
    # Stand-in kinds (base.features.StandIn, "circular", or "all") a result may not rest on.
    forbidden_stand_ins: tuple[str, ...] = ()
    # Where a kind cluster's platform images come from: preloaded into the node image ("built"),
    # or pulled under their published names from a local registry mirror ("mirror").
    kind_images: str = "built"

    @property
    def local_engine(self) -> str:
        return self.local_engine_version or self.expect.engine_version

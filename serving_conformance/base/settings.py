"""What one run is asked to check: the expected values and the options, as plain data.

Built from the command line by the plugin's options module; read by every layer below it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from serving_conformance.base.timeouts import Timeouts

# The profiles of the report, in order; a gate requires them by these names.
PROFILES = ("STATIC", "ENGINE", "SERVING-CPU", "SERVING-GPU")
CLUSTER_PROVIDERS = ("auto", "kind", "existing", "local", "none")


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


@dataclass(frozen=True)
class Settings:
    manifests_dir: Path  # the first of manifests_dirs (where a single place is named)
    manifests_dirs: tuple[Path, ...]
    expect: Expectations
    kserve_namespace: str
    namespace_prefix: str
    timeouts: Timeouts
    report_path: Path | None
    required_profiles: tuple[str, ...]
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

    @property
    def local_engine(self) -> str:
        return self.local_engine_version or self.expect.engine_version

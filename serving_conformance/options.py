"""Command-line options and markers, and the settings object built from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from serving_conformance.base import versions
from serving_conformance.base.timeouts import Timeouts, from_environment_and
from serving_conformance.rules.findings import Expectations

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MANIFESTS = PROJECT_ROOT / "manifests"
CLUSTER_PROVIDERS = ("auto", "kind", "existing", "local", "none")

MARKERS = (
    "static: needs no cluster; judges the manifests offline",
    "cpu: needs a cluster; the workload runs on CPU nodes",
    "gpu: needs a cluster with nvidia.com/gpu allocatable",
    "rule(rule): the offline rule a static test proves; parametrizes it by the resources the rule applies to",
    "engine: needs the local vLLM engine (installed on demand into the cache); no cluster",
    "behaviour(id): the documented behaviour a test proves (its key in the report)",
    "workloads(selector, hardware=False): parametrize `workload` by the manifests' workloads the selector picks;"
    " with hardware=True each gets the cpu or gpu marker its resources call for",
    "control_plane: a cluster test that needs only the control plane; runs first, while the engines start",
    "resources(selector): parametrize `resource` by the manifests' resources the selector picks, each with the"
    " cpu or gpu marker of the resources it involves",
)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("serving-conformance", "LLM serving conformance")
    group.addoption(
        "--manifests-dir",
        type=Path,
        default=None,
        help=f"manifests under test, walked recursively (default: {DEFAULT_MANIFESTS})",
    )
    group.addoption("--served-model-name", default=versions.SERVED_MODEL_NAME, help="model name clients use (default: %(default)s)")
    group.addoption("--engine-version", default=versions.VLLM_EXPECTED, help="vLLM version every path must run (default: %(default)s)")
    group.addoption(
        "--served-engine-version",
        default=None,
        help="vLLM version running servers must report (default: --engine-version on a real cluster; the local "
        "engine's version where the suite runs vLLM itself)",
    )
    group.addoption("--kserve-version", default=versions.KSERVE, help="KServe release under test (default: %(default)s)")
    group.addoption(
        "--kubernetes-version",
        default=versions.KUBERNETES,
        help="Kubernetes release whose schemas validate core objects (default: %(default)s)",
    )
    group.addoption("--kserve-namespace", default="kserve", help="namespace of the KServe controller (default: %(default)s)")
    group.addoption(
        "--namespace-prefix",
        default="sc",
        help="prefix of the namespaces the suite creates, one per worker (default: %(default)s)",
    )
    group.addoption(
        "--gpu-slots",
        type=int,
        default=1,
        help="GPUs a GPU workload can be scheduled on at once; below two pods' worth, Recreate is required (default: %(default)s)",
    )
    group.addoption("--conformance-report", type=Path, default=None, help="write the conformance report here (.yaml, or .json)")
    group.addoption(
        "--require-profile",
        action="append",
        default=[],
        metavar="PROFILE",
        help="fail the run unless this profile (STATIC, ENGINE, SERVING-CPU, SERVING-GPU) ran and fully passed; repeatable",
    )
    group.addoption(
        "--timeout",
        dest="sc_timeouts",
        action="append",
        default=[],
        metavar="NAME=SECONDS",
        help=f"override a named wait; names: {', '.join(Timeouts.names())}",
    )
    cluster = parser.getgroup("serving-conformance cluster")
    cluster.addoption(
        "--cluster",
        choices=CLUSTER_PROVIDERS,
        default="auto",
        help="where cluster tests run: kind, an existing cluster, the local testbed, or auto (default: %(default)s)",
    )
    cluster.addoption("--cluster-name", default="serving-conformance", help="kind or testbed cluster name (default: %(default)s)")
    cluster.addoption("--kubeconfig", type=Path, default=None, help="kubeconfig for --cluster existing (default: $KUBECONFIG or ~/.kube/config)")
    cluster.addoption("--kube-context", default=None, help="context for --cluster existing (default: the kubeconfig's current context)")
    cluster.addoption(
        "--allow-context",
        action="append",
        default=[],
        metavar="CONTEXT",
        help="contexts the suite may touch with --cluster existing; repeatable; the suite refuses any other",
    )
    cluster.addoption("--keep-cluster", action="store_true", help="do not delete a cluster the suite created")
    cluster.addoption(
        "--install-platform",
        action="store_true",
        help="on --cluster existing, install the platform (Gateway API, cert-manager, KServe) instead of only checking it",
    )
    cluster.addoption(
        "--local-pods",
        choices=("vllm", "simulated"),
        default="vllm",
        help="on the local testbed, run vLLM pods as real local vLLM processes, or only simulate them "
        "(control plane only; data-plane tests then skip) (default: %(default)s)",
    )
    cluster.addoption(
        "--testbed-istio-crd",
        choices=("installed", "absent"),
        default="installed",
        help="on the local testbed, install Istio's VirtualService CRD so that its absence check means "
        "something, or leave it out (default: %(default)s)",
    )
    cluster.addoption(
        "--keep-logs",
        action="store_true",
        help="keep the local testbed's logs in the artifacts directory also when the run passes",
    )
    cluster.addoption(
        "--require-gpu",
        action="store_true",
        help="fail, instead of skip, gpu tests when the cluster has no nvidia.com/gpu allocatable",
    )
    cluster.addoption(
        "--artifacts-dir",
        type=Path,
        default=Path("conformance-artifacts"),
        help="where diagnostics of failed cluster tests go (default: %(default)s)",
    )


@dataclass(frozen=True)
class Settings:
    manifests_dir: Path
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
    served_engine_version: str | None
    local_pods: str
    keep_logs: bool
    testbed_istio_crd: str


def settings_from(config: pytest.Config) -> Settings:
    option = config.option
    try:
        timeouts = from_environment_and(option.sc_timeouts)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from exc
    profiles = tuple(p.upper() for p in option.require_profile)
    from serving_conformance.report import PROFILES

    unknown = [p for p in profiles if p not in PROFILES]
    if unknown:
        raise pytest.UsageError(f"--require-profile: unknown profile(s) {unknown}; known: {', '.join(PROFILES)}")
    if option.gpu_slots < 0:
        raise pytest.UsageError("--gpu-slots must be 0 or more")
    return Settings(
        manifests_dir=(option.manifests_dir or DEFAULT_MANIFESTS).resolve(),
        expect=Expectations(
            served_model_name=option.served_model_name,
            engine_version=option.engine_version,
            kserve_version=option.kserve_version.lstrip("v"),
            kubernetes_version=option.kubernetes_version.lstrip("v"),
            gpu_slots=option.gpu_slots,
        ),
        kserve_namespace=option.kserve_namespace,
        namespace_prefix=option.namespace_prefix,
        timeouts=timeouts,
        report_path=option.conformance_report,
        required_profiles=profiles,
        cluster=option.cluster,
        cluster_name=option.cluster_name,
        kubeconfig=option.kubeconfig,
        kube_context=option.kube_context,
        allowed_contexts=tuple(option.allow_context),
        keep_cluster=option.keep_cluster,
        install_platform=option.install_platform,
        require_gpu=option.require_gpu,
        artifacts_dir=option.artifacts_dir.resolve(),
        served_engine_version=option.served_engine_version,
        local_pods=option.local_pods,
        keep_logs=option.keep_logs,
        testbed_istio_crd=option.testbed_istio_crd,
    )

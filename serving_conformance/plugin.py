"""The pytest plugin: options, the behaviour each test proves, parametrization by the manifests
under test, the gate's markers, diagnostics, the report.

Registered through the `pytest11` entry point. Data flows one way: options become Settings, the
manifests are loaded once, tests are parametrized by what the manifests declare and get the
profile markers their behaviour and workloads call for, fixtures (fixtures.py) hand them a ready
place to run, and the report module writes the verdict.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving_conformance import fixtures, invocation
from serving_conformance.base.data import SUITE
from serving_conformance.base.progress import progress
from serving_conformance.base.redact import Secret, redact_text
from serving_conformance.behaviours import Behaviour, Layer, registered
from serving_conformance.cluster.base import new_run
from serving_conformance.diagnostics import collect_for_item as collect_diagnostics
from serving_conformance.fixtures import (
    CLUSTER_RESOURCES,
    DEPLOYER,
    ENGINE_FLEET,
    ENGINE_WORKLOADS,
    LATER_NEEDS,
    MANIFESTS,
    REPORT,
    RULE_CONTEXT,
    RUN,
    SETTINGS,
)
from serving_conformance.gate import INVOLVED
from serving_conformance.manifests.design import outside_design
from serving_conformance.manifests.load import load_manifests
from serving_conformance.manifests.model import ManifestSet, Resource
from serving_conformance.manifests.workloads import Workload, split_backends
from serving_conformance.options import (
    MARKERS,
    add_options,
    manifests_dirs,
    report_path_of,
    settings_from,
    suite_outputs,
)
from serving_conformance.parametrize import behaviour_of_node, parametrize
from serving_conformance.platform.deploy import WORKLOAD_KINDS
from serving_conformance.platform.session import ClusterSession
from serving_conformance.providers.choose import bounded_capacity
from serving_conformance.report import ConformanceReport, error_report, tag_item, write_report
from serving_conformance.rules.context import rule_context
from serving_conformance.rules.findings import RuleContext
from serving_conformance.rules.schema import schema_known

RUN_DIR_KEY = "sc_run_dir"
RUN_ID_KEY = "sc_run_id"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)  # before pytest's own, which finds the initial conftests from the test paths
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    invocation.correct(early_config, args)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """The conformance suite's modules, also where the repository's own `python_files` differ."""
    if invocation.collects_suite_file(file_path, parent.config):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


# Signals received as an interrupt, per run. Python raises KeyboardInterrupt wherever the main
# thread is; raised inside a finalizer (__del__, a generator the collector closes) it is only
# printed and the run goes on, so the record makes the next test's end raise it again.
SIGNALLED = pytest.StashKey[list[int]]()
PREVIOUS_HANDLERS = pytest.StashKey[dict[int, object]]()


def _signal_as_interrupt(record: list[int], signum: int, frame: object) -> None:
    record.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


def _take_signals(config: pytest.Config) -> None:
    """SIGTERM (a CI cancel) goes through the same teardown as Ctrl-C, and both are recorded; a
    signal someone else handles, or ignores, is left as it is."""
    record: list[int] = []
    config.stash[SIGNALLED] = record
    previous = {}
    for signum, default in ((signal.SIGTERM, signal.SIG_DFL), (signal.SIGINT, signal.default_int_handler)):
        if signal.getsignal(signum) in (default, None):
            previous[signum] = signal.signal(signum, functools.partial(_signal_as_interrupt, record))
    config.stash[PREVIOUS_HANDLERS] = previous


def _raise_if_signalled(config: pytest.Config) -> None:
    """A test ended although a signal came: its KeyboardInterrupt was swallowed; raise it here."""
    record = config.stash.get(SIGNALLED, [])
    if record:
        raise KeyboardInterrupt(f"signal {record[-1]} (raised again: Python could not stop the run where it came)")


def pytest_unconfigure(config: pytest.Config) -> None:
    for signum, handler in config.stash.get(PREVIOUS_HANDLERS, {}).items():
        signal.signal(signum, handler)


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    config.pluginmanager.register(fixtures, "serving-conformance-fixtures")
    with _usage_errors_reported(config):
        _configure(config)


@contextlib.contextmanager
def _usage_errors_reported(config: pytest.Config) -> Iterator[None]:
    """A usage error leaves `result: error` with its reason at the report path (no earlier
    verdict outlives it), then stops the run as pytest does."""
    try:
        yield
    except pytest.UsageError as exc:
        _leave_report(config, error_report(f"usage error: {exc}"))
        raise
    except KeyboardInterrupt:  # Ctrl-C or a CI cancel while the manifests were read or rendered
        _leave_report(config, {**error_report("interrupted while the manifests were read, before any test ran"),
                               "result": "interrupted"})
        raise


def _leave_report(config: pytest.Config, report: dict) -> None:
    path = report_path_of(config)
    if path is not None and not hasattr(config, "workerinput"):
        write_report(report, path)


def _configure(config: pytest.Config) -> None:
    # Replaced before anything else (reading and rendering a large repository takes a while): an
    # earlier verdict never outlives this run, however it ends.
    _leave_report(config, {**error_report("the run did not finish: it is still running, or was killed before it "
                                          "could write its verdict"), "result": "interrupted"})
    manifests = load_manifests(list(manifests_dirs(config)), exclude=suite_outputs(config))
    settings = settings_from(config, manifests.pins)
    config.stash[SETTINGS] = settings
    config.stash[MANIFESTS] = manifests
    context = rule_context(manifests, settings.expect)
    config.stash[RULE_CONTEXT] = context
    note_schemaless(manifests, context)
    try:
        manifests.notices.extend(outside_design(manifests, settings.expect))
    except Exception:  # noqa: BLE001 - a notice must never stop a run on odd content
        pass
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:  # the controller (or the only process): owns the run and the report
        config.stash[RUN] = new_run()
        _take_signals(config)
        report = ConformanceReport(settings, manifests)
        config.stash[REPORT] = report
        config.pluginmanager.register(report, "sc-report")
    else:
        config.stash[RUN] = (Path(workerinput[RUN_DIR_KEY]), workerinput[RUN_ID_KEY])


def note_schemaless(manifests: ManifestSet, context: RuleContext) -> None:
    """Objects of kinds no schema here covers are not schema-validated: said once per kind."""
    kinds: dict[str, int] = {}
    for resource in manifests.resources:
        try:
            known = schema_known(resource, context)
        except Exception:  # noqa: BLE001 - the schema rule's own case says it crashed; never stop the run here
            known = True
        if not known:
            key = f"{resource.api_version} {resource.kind}"
            kinds[key] = kinds.get(key, 0) + 1
    for key, count in sorted(kinds.items()):
        manifests.notices.append(f"{key}: no schema known here, {count} object(s) not schema-validated (not applicable)")


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: object, right: object) -> list[str] | None:
    """pytest's diff of two strings shows their text, not their repr: never for a secret."""
    if isinstance(left, Secret) or isinstance(right, Secret):
        return [f"{left!r} {op} {right!r}", "(the value of a secret is not shown)"]
    return None


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
    _redacted(report)
    if report.failed and report.when in ("setup", "call") and "deployer" in getattr(item, "funcargs", {}):
        path = collect_diagnostics(item)
        if path is not None:
            report.sections.append(("diagnostics", f"events, logs and object YAML: {path}"))
            report.user_properties.append(("sc.diagnostics", str(path)))


@pytest.hookimpl(trylast=True)  # after pytest's own, which finalizes fixtures still holding the cluster
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput") or RUN not in config.stash:
        return
    run_dir, run_id = config.stash[RUN]
    settings = config.stash[SETTINGS]
    failed = session.testsfailed > 0 or session.exitstatus not in (0, 5)
    clean = False
    try:
        clean = ClusterSession(settings, config.stash[MANIFESTS], run_dir, run_id, progress).teardown_keeping_logs(
            settings.artifacts_dir if failed or settings.keep_logs else None
        )
    finally:
        # The run directory names what the run started (records, and the command lines of its
        # processes): it is removed only once all of that is gone, so the next run can find the rest.
        if clean:
            shutil.rmtree(run_dir, ignore_errors=True)
        elif run_dir.exists():
            progress(f"teardown incomplete: kept {run_dir}; the next local testbed run stops what it names, "
                     "or remove it by hand once nothing runs from it")


def _redacted(report: pytest.TestReport) -> None:
    """The one place every failure and skip message is redacted before anything prints it: the
    terminal, JUnit and the conformance report all read the test report (a rule quoting
    `--model=https://user:pw@host/`, an oci:// URI with credentials, an --api-key argument)."""
    if report.longrepr is None:
        return
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        path, line, reason = report.longrepr
        report.longrepr = (path, line, redact_text(str(reason)))
        return
    text = str(report.longrepr)
    redacted = redact_text(text)
    if redacted != text:
        report.longrepr = redacted
    report.sections = [(title, redact_text(content)) for title, content in report.sections]


# --- collection ---------------------------------------------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize(metafunc)


def _is_conformance_test(item: pytest.Item) -> bool:
    path = Path(str(getattr(item, "path", "")))
    return item.get_closest_marker("behaviour") is not None or SUITE in path.parents


def _profile(item: pytest.Item, behaviour: Behaviour) -> str | None:
    if behaviour.layer == Layer.CLUSTER:
        if item.get_closest_marker("gpu") is not None:
            return "SERVING-GPU"
        if item.get_closest_marker("cpu") is not None:
            return "SERVING-CPU"
        return None
    return behaviour.profiles[0]


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by the markers added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    with _usage_errors_reported(config):
        _tag_and_order(config, items)


def _tag_and_order(config: pytest.Config, items: list[pytest.Item]) -> None:
    errors = []
    report = config.stash.get(REPORT, None)
    for item in items:
        if not _is_conformance_test(item):
            continue
        behaviour = behaviour_of_node(item)
        if not registered(behaviour):
            errors.append(f"{item.nodeid}: no registered behaviour (@pytest.mark.behaviour(<serving_conformance.behaviours.X>))")
            continue
        if behaviour.layer != Layer.CLUSTER:
            item.add_marker(behaviour.layer.value)
        profile = _profile(item, behaviour)
        if profile is None:
            errors.append(f"{item.nodeid}: a cluster behaviour's test needs a profile: parametrize it by "
                          "@pytest.mark.workloads(...) or @pytest.mark.resources(...), which give cpu or gpu")
            continue
        tag_item(item, behaviour.id, behaviour.title, profile)
        if report is not None:
            report.expect(item.nodeid, behaviour.id, behaviour.title, profile)
        item.stash[INVOLVED] = _involved(item, config.stash[MANIFESTS])
    if errors:
        raise pytest.UsageError("conformance tests without a behaviour or profile:\n  " + "\n  ".join(errors))
    # Control-plane checks first: they run while the workloads' engines are still starting.
    items.sort(key=lambda item: 0 if item.get_closest_marker("control_plane") else 1)
    if bounded_capacity(config.stash[SETTINGS].cluster):
        # Grouped by workload (control-plane checks first within each), so that each workload goes
        # once its tests are done and makes room for the next.
        manifests = config.stash[MANIFESTS]
        needs = {item.nodeid: _needs(item, manifests) for item in items}
        first: dict[tuple[str, str], int] = {}
        for item in items:
            for need in needs[item.nodeid]:
                first.setdefault(need, len(first))
        items.sort(key=lambda item: (min((first[n] for n in needs[item.nodeid]), default=-1),
                                     0 if item.get_closest_marker("control_plane") else 1))


def _params(item: pytest.Item) -> dict:
    return getattr(getattr(item, "callspec", None), "params", {})


def _workloads_of_test(item: pytest.Item, manifests: ManifestSet) -> list[Resource]:
    """The workloads a cluster test is parametrized by: its workload, or a split route's backends."""
    workload, resource = _params(item).get("workload"), _params(item).get("resource")
    found = [workload.resource] if isinstance(workload, Workload) else []
    if isinstance(resource, Resource) and resource.kind == "HTTPRoute":
        found += [isvc for isvc, _, _ in split_backends(resource, manifests) if isvc is not None]
    return found


def _involved(item: pytest.Item, manifests: ManifestSet) -> frozenset[str]:
    """The objects a test is about: what it is parametrized by, and a split's backends."""
    params = _params(item)
    found = {r.ident for r in _workloads_of_test(item, manifests)}
    for value in (params.get("resource"), params.get("manifest")):
        if isinstance(value, Resource):
            found.add(value.ident)
    return frozenset(found)


def _needs(item: pytest.Item, manifests: ManifestSet) -> list[tuple[str, str]]:
    """The (kind, name) of the workloads a cluster test deploys: those it is parametrized by, and
    an InferenceService or Deployment given as its resource (which it deploys in its own form)."""
    found = _workloads_of_test(item, manifests)
    resource = _params(item).get("resource")
    if isinstance(resource, Resource) and resource.kind in WORKLOAD_KINDS:
        found.append(resource)
    return list(dict.fromkeys((r.kind, r.name) for r in found))


def pytest_collection_finish(session: pytest.Session) -> None:
    # What the selected tests will need, started together when first used: the local vLLM servers
    # of the engine tests, and the workloads of the cluster tests.
    engine, cluster = [], []
    manifests = session.config.stash[MANIFESTS]
    for item in session.items:
        workload = _params(item).get("workload")
        if item.get_closest_marker("engine") and isinstance(workload, Workload):
            engine.append(workload)
        elif "deployer" in getattr(item, "fixturenames", ()):
            cluster.extend(_workloads_of_test(item, manifests))
    session.config.stash[ENGINE_WORKLOADS] = engine
    session.config.stash[CLUSTER_RESOURCES] = list({r.ident: r for r in cluster}.values())
    later: dict[str, set[tuple[str, str]]] = {}
    needed: set[tuple[str, str]] = set()
    for item in reversed(session.items):
        later[item.nodeid] = set(needed)
        if "deployer" in getattr(item, "fixturenames", ()):
            needed.update(_needs(item, manifests))
    session.config.stash[LATER_NEEDS] = later


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
    elif DEPLOYER in stash and stash[DEPLOYER].bounded:
        stash[DEPLOYER].release_except(stash.get(LATER_NEEDS, {}).get(item.nodeid, set()))
    _raise_if_signalled(item.config)

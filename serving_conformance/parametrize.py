"""Parametrization by what the manifests declare: each conformance test gets one case per object
its behaviour judges, marked with the hardware profile (cpu or gpu) the object calls for.

No manifest content makes collection fail: a behaviour with nothing to judge is one skipped case
(once in each cluster profile for a cluster behaviour), and a selection that crashes on odd content
is one case the gate fails, saying so.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from serving_conformance.behaviours import Behaviour, Layer
from serving_conformance.fixtures import MANIFESTS, RULE_CONTEXT, SETTINGS
from serving_conformance.gate import SelectionCrashed
from serving_conformance.manifests.workloads import all_workloads, needs_gpu


def parametrize(metafunc: pytest.Metafunc) -> None:
    """Parametrize by what the manifests declare. No manifest content makes collection fail: a
    behaviour with nothing to judge is one skipped case (per profile of its layer), and a
    selection that crashes on odd content is one failing case that says so."""
    manifests = metafunc.config.stash[MANIFESTS]
    names = metafunc.fixturenames
    where = f"in the manifests ({', '.join(str(r) for r in manifests.roots)})"
    behaviour = behaviour_of_node(metafunc.definition)
    cluster = behaviour is not None and behaviour.layer == Layer.CLUSTER
    if "manifest" in names:
        rule = behaviour.rule if behaviour is not None else None
        if rule is None:
            raise pytest.UsageError(f"{metafunc.definition.nodeid} uses `manifest` without a static behaviour with a rule")
        roots = ", ".join(str(r) for r in manifests.roots)

        def static_cases() -> tuple[list, list[str]]:
            chosen = rule.select(metafunc.config.stash[RULE_CONTEXT])
            return chosen, [r.ident for r in chosen]

        _parametrize(metafunc, "manifest", static_cases, f"{rule.nothing_to_check} ({roots})", cluster)
    if "workload" in names:
        select = _marker(metafunc, "workload", "workloads").args[0]
        expect = metafunc.config.stash[SETTINGS].expect

        def workload_cases() -> tuple[list, list[str]]:
            chosen = [w for w in all_workloads(manifests) if select(w, expect)]
            params = [pytest.param(w, marks=[hardware(needs_gpu(w.resource))] if cluster else []) for w in chosen]
            return params, [w.resource.ident if w.component in ("predictor", "pod") else w.label for w in chosen]

        _parametrize(metafunc, "workload", workload_cases, f"no {select.description} {where}", cluster)
    if "resource" in names:
        select = _marker(metafunc, "resource", "resources").args[0]

        def resource_cases() -> tuple[list, list[str]]:
            chosen = [r for r in manifests.resources if select(r, manifests)]
            params = [pytest.param(r, marks=[hardware(any(needs_gpu(i) for i in select.involves(r, manifests)))])
                      for r in chosen]
            return params, [r.ident for r in chosen]

        _parametrize(metafunc, "resource", resource_cases, f"no {select.description} {where}", cluster)
    if "manifest_file" in names:
        problems = {p.path: [] for p in manifests.problems}
        for problem in manifests.problems:
            problems[problem.path].append(problem)
        files = [(path, problems.pop(path, [])) for path in manifests.files]
        files += list(problems.items())  # directories and files that could not be listed at all
        ids = [manifests.relative(path) for path, _ in files]
        _parametrize(metafunc, "manifest_file", lambda: (files, ids), "", cluster)


def behaviour_of_node(node: pytest.Item | pytest.Function) -> Behaviour | None:
    marker = node.get_closest_marker("behaviour")
    found = marker.args[0] if marker is not None and marker.args else None
    return found if isinstance(found, Behaviour) else None


def _marker(metafunc: pytest.Metafunc, fixture: str, name: str) -> pytest.Mark:
    marker = metafunc.definition.get_closest_marker(name)
    if marker is None:
        raise pytest.UsageError(f"{metafunc.definition.nodeid} uses `{fixture}` without @pytest.mark.{name}(...)")
    return marker


def hardware(gpu: bool) -> pytest.MarkDecorator:
    return pytest.mark.gpu if gpu else pytest.mark.cpu


def _parametrize(metafunc: pytest.Metafunc, fixture: str, cases: Callable[[], tuple[list, list[str]]], nothing: str,
                 cluster: bool) -> None:
    """Parametrize by `cases()`; with none, one skipped case that says why there is nothing to
    test; where `cases()` crashes, one case that fails saying so. A cluster behaviour's case of
    that kind is given once per profile (cpu and gpu), so every `-m` finds it in its profile."""
    try:
        params, ids = cases()
    except Exception as exc:  # noqa: BLE001 - odd manifest content must not stop collection
        crash = SelectionCrashed(f"rule crashed: choosing what to judge: {type(exc).__name__}: {exc}")
        _one_case(metafunc, fixture, crash, [], "crashed", cluster)
        return
    if params:
        metafunc.parametrize(fixture, params, ids=_unique_ids(ids))
    else:
        _one_case(metafunc, fixture, None, [pytest.mark.skip(reason=nothing)], "none", cluster)


def _one_case(metafunc: pytest.Metafunc, fixture: str, value: object, marks: list, ident: str, cluster: bool) -> None:
    if not cluster:
        metafunc.parametrize(fixture, [pytest.param(value, marks=marks)], ids=[ident])
        return
    metafunc.parametrize(fixture, [pytest.param(value, marks=[*marks, hardware(gpu)]) for gpu in (False, True)],
                         ids=[f"{ident}-cpu", f"{ident}-gpu"])


def _unique_ids(ids: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for ident in ids:
        seen[ident] = seen.get(ident, 0) + 1
        unique.append(ident if seen[ident] == 1 else f"{ident}#{seen[ident]}")
    return unique

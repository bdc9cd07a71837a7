"""Each seeded fault makes exactly its rule's tests fail, on its target, saying what the fault
expects (a crash is no catch); the clean manifests pass every rule."""

from pathlib import Path

import pytest

from serving_conformance import behaviours
from serving_conformance.base.data import DEFAULT_MANIFESTS, SUITE
from serving_conformance.checks.static import Failure, control_problems
from serving_conformance.manifests.faults import load_faults, materialize

REPO = Path(__file__).resolve().parent.parent
STATIC = SUITE / "static"
FAULTS = load_faults(REPO / "fixtures" / "faults")


def run_static(pytester: pytest.Pytester, manifests: Path, *options: str):
    return pytester.inline_run(str(STATIC), "-m", "static", "--manifests-dir", str(manifests), "-p", "no:cacheprovider",
                               *options)


def failures_of(reprec) -> list[Failure]:
    """Each failed test: its behaviour, its object (the test id's parameter) and its message."""
    return [
        Failure(dict(r.user_properties)["sc.behaviour"], r.nodeid.rsplit("[", 1)[-1].rstrip("]"), str(r.longrepr))
        for r in reprec.getfailures()
    ]


def test_clean_manifests_pass_every_rule(pytester):
    reprec = run_static(pytester, DEFAULT_MANIFESTS)
    passed, skipped, failed = reprec.listoutcomes()
    assert not failed, [r.nodeid for r in failed]
    assert not skipped, [(r.nodeid, r.longrepr) for r in skipped]
    static = {b.id for b in behaviours.REGISTRY.values() if b.layer == behaviours.Layer.STATIC}
    assert {dict(r.user_properties)["sc.behaviour"] for r in passed} == static


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_fails_exactly_its_rule(pytester, tmp_path, fault):
    variant = materialize(fault, DEFAULT_MANIFESTS, tmp_path / "manifests")
    reprec = run_static(pytester, variant, *fault.options)
    problems = control_problems(fault, failures_of(reprec))
    assert not problems, "\n".join(problems)
    assert not reprec.listoutcomes()[1], "skipped"

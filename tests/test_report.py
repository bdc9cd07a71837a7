"""The conformance report: profiles, behaviours, skip reasons, partial results and required profiles."""

import json

import yaml

TESTS = """
import pytest
from serving_conformance import behaviours as B
from serving_conformance.manifests.design import Selector

@pytest.mark.behaviour(B.MANIFESTS_PARSE)
def test_ok():
    pass

@pytest.mark.behaviour(B.SCHEMA)
def test_skipped():
    pytest.skip("schema not obtainable")

@pytest.mark.behaviour(B.CPU_LIMIT_OVERRIDE)
@pytest.mark.workloads(Selector("the CPU predictor", lambda w, name: w.resource.name == "qwen-cpu"))
def test_broken(workload):
    pytest.fail("observed X, which matters because Y")  # as the rules fail
"""


def run(pytester, *args):
    pytester.makepyfile(test_sample=TESTS)
    return pytester.runpytest(*args)


def test_report_records_each_behaviour_and_the_overall_result(pytester):
    result = run(pytester, "--conformance-report", "report.yaml")
    report = yaml.safe_load((pytester.path / "report.yaml").read_text())
    profiles = {p["name"]: p for p in report["profiles"]}
    assert profiles["STATIC"]["result"] == "partial"
    assert profiles["SERVING-CPU"]["result"] == "failure"
    assert profiles["SERVING-GPU"]["result"] == "not-run"
    assert report["result"] == "failure" and result.ret == 1
    skipped = {b["id"]: b for b in profiles["STATIC"]["behaviours"]}["schema-valid"]
    assert skipped["result"] == "skip" and skipped["tests"][0]["reason"] == "schema not obtainable"
    failing = profiles["SERVING-CPU"]["behaviours"][0]
    assert failing["tests"][0]["reason"].startswith("observed X, which matters because Y")
    assert report["versionsUnderTest"]["kserve"] == "0.19.0" and report["suite"]["name"] == "serving-conformance"


def test_a_skip_makes_the_result_partial_and_json_is_written_when_asked(pytester):
    result = run(pytester, "-m", "static", "--conformance-report", "report.json")
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["result"] == "partial" and result.ret == 0
    assert report["skipped"] == [{"test": "test_sample.py::test_skipped", "reason": "schema not obtainable"}]
    assert report["profiles"][0]["result"] == "partial"


def test_a_required_profile_that_did_not_fully_pass_fails_the_run(pytester):
    result = run(pytester, "-m", "static", "--require-profile", "STATIC", "--require-profile", "SERVING-GPU",
                 "--conformance-report", "report.yaml")
    report = yaml.safe_load((pytester.path / "report.yaml").read_text())
    assert report["requiredProfilesUnmet"] == ["STATIC", "SERVING-GPU"]
    assert report["result"] == "failure" and result.ret == 1
    result.stdout.fnmatch_lines(["*required profile(s) not fully passed: STATIC, SERVING-GPU*"])


def test_unknown_profiles_and_timeouts_are_usage_errors(pytester):
    result = run(pytester, "--require-profile", "NOPE")
    result.stderr.fnmatch_lines(["*unknown profile(s)*NOPE*"])
    result = run(pytester, "--timeout", "nope=3")
    result.stderr.fnmatch_lines(["*bad timeout 'nope=3'*"])


INTERRUPTED = """
import pytest
from serving_conformance import behaviours as B

@pytest.mark.behaviour(B.MANIFESTS_PARSE)
def test_first():
    pass

@pytest.mark.behaviour(B.SCHEMA)
def test_interrupted():
    raise KeyboardInterrupt("operator pressed Ctrl-C")

@pytest.mark.behaviour(B.IMAGES_PINNED)
def test_never_reached():
    pass
"""


def test_an_interrupted_run_is_never_a_success_and_says_why(pytester):
    pytester.makepyfile(test_sample=INTERRUPTED)
    result = pytester.runpytest_subprocess("--conformance-report", "report.yaml", "--require-profile", "STATIC",
                                           "--junitxml", "j.xml", "-p", "no:cacheprovider")
    report = yaml.safe_load((pytester.path / "report.yaml").read_text())
    assert report["result"] == "interrupted" and result.ret != 0
    assert "operator pressed Ctrl-C" in report["reason"] and "did not run" in report["reason"]
    assert 'name="serving-conformance.result"' in (pytester.path / "j.xml").read_text()
    result.stdout.fnmatch_lines(["*stopped early: interrupted*", "*overall: interrupted*"])


STOPPED = """
import pytest
from serving_conformance import behaviours as B

@pytest.mark.behaviour(B.MANIFESTS_PARSE)
def test_stops_the_run(pytestconfig):
    from serving_conformance.fixtures import REPORT
    pytestconfig.stash[REPORT].stop("the cluster could not be provided: no route to host")
    pytest.exit("cannot provide the cluster", returncode=1)
"""


def test_a_run_that_could_not_reach_its_place_is_a_failure_with_the_reason(pytester):
    pytester.makepyfile(test_sample=STOPPED)
    result = pytester.runpytest("--conformance-report", "report.json")
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["result"] == "failure" and result.ret != 0
    assert "no route to host" in report["reason"]


SEVERAL_IMAGES = """
import pytest
from serving_conformance import behaviours as B
from serving_conformance.base.features import Feature, Substitution
from serving_conformance.report import record_substitutions

@pytest.mark.behaviour(B.MANIFESTS_PARSE)
def test_two_images_stood_in_for(request):
    record_substitutions(request.node, [
        Substitution("image", "vllm/vllm-openai:v0.23.0", "local/vllm-cpu", (Feature.SERVING,)),
        Substitution("image", "vllm/vllm-openai-cpu:v0.23.0", "local/vllm-cpu", (Feature.SERVING,)),
    ])
"""


def test_each_image_stood_in_for_is_its_own_substitution(pytester):
    pytester.makepyfile(test_sample=SEVERAL_IMAGES)
    pytester.runpytest("--conformance-report", "report.yaml", "-p", "no:cacheprovider")
    report = yaml.safe_load((pytester.path / "report.yaml").read_text())
    assert [s["platform"] for s in report["substitutions"]] == ["vllm/vllm-openai-cpu:v0.23.0", "vllm/vllm-openai:v0.23.0"]

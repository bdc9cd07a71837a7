"""Negative controls against real components: a seeded fault makes the matching live test fail,
with a message that says what was observed and why it matters.

Each case runs the unmodified conformance suite in a subprocess, against the local testbed (real
kube-apiserver, the real KServe manager and webhooks, real vLLM processes behind Traefik) or the
local vLLM engine, on the manifests with one fault applied, and reads the conformance report.
"""

import json
from pathlib import Path

import pytest

from serving_conformance.base.data import DEFAULT_MANIFESTS, SUITE
from serving_conformance.manifests.faults import load_fault, materialize

REPO = Path(__file__).resolve().parent.parent
FAULTS = REPO / "fixtures" / "faults"


def run_suite(pytester, tmp_path, faults, *args):
    manifests = DEFAULT_MANIFESTS
    for index, name in enumerate(faults):
        manifests = materialize(load_fault(FAULTS / f"{name}.yaml"), manifests, tmp_path / f"manifests-{index}")
    report = tmp_path / "report.json"
    result = pytester.runpytest_subprocess(
        str(SUITE), "--manifests-dir", str(manifests), "--conformance-report", str(report),
        "--artifacts-dir", str(tmp_path / "artifacts"), "-p", "no:cacheprovider", *args,
    )
    return result, json.loads(report.read_text())


def outcomes(report):
    return {
        test["id"].split("::", 1)[1]: test
        for profile in report["profiles"] for behaviour in profile["behaviours"] for test in behaviour["tests"]
    }


@pytest.mark.testbed
def test_istio_left_on_fails_the_no_virtualservice_test(pytester, tmp_path):
    result, report = run_suite(
        pytester, tmp_path, ["istio-left-on"],
        "-m", "cpu", "--cluster", "local", "--local-pods", "simulated", "--testbed-istio-crd", "absent",
        "-k", "qwen-cpu and no_virtualservice_over_the_window",
    )
    test = outcomes(report)["test_no_virtualservice_over_the_window[kserve/qwen-cpu]"]
    assert test["outcome"] == "fail" and "VirtualServiceCRDNotFound" in test["reason"], test
    assert "disableIstioVirtualHost" in test["reason"], test
    assert report["result"] == "failure" and result.ret != 0


@pytest.mark.testbed
def test_a_missing_cpu_limit_fails_the_limits_test(pytester, tmp_path):
    _, report = run_suite(
        pytester, tmp_path, ["no-cpu-limit"], "-m", "cpu", "--cluster", "local", "--local-pods", "simulated",
        "-k", "qwen-cpu and carries_the_manifest_limits",
    )
    test = outcomes(report)["test_predictor_deployment_carries_the_manifest_limits[kserve/qwen-cpu]"]
    assert test["outcome"] == "fail" and "must be less than or equal to cpu limit of 1" in test["reason"], test


@pytest.mark.testbed
def test_a_canary_that_sends_no_traffic_fails_the_split(pytester, tmp_path):
    _, report = run_suite(pytester, tmp_path, ["canary-no-traffic"], "-m", "gpu", "--cluster", "local", "-k", "canary_split")
    test = outcomes(report)["test_canary_split_is_served_as_declared[httproute/qwen-canary-split]"]
    assert test["outcome"] == "fail", test
    assert "declares no traffic for kserve/qwen-canary" in test["reason"], test


@pytest.mark.testbed
def test_canary_traffic_percent_in_standard_mode_is_diagnosed(pytester, tmp_path):
    _, report = run_suite(
        pytester, tmp_path, ["canary-traffic-percent"], "-m", "cpu", "--cluster", "local", "-k", "canary_split and qwen-cpu"
    )
    test = outcomes(report)["test_canary_split_is_served_as_declared[kserve/qwen-cpu]"]
    assert test["outcome"] == "fail", test
    assert "only the canary revision answered all" in test["reason"], test
    assert "ignored in Standard mode" in test["reason"], test


@pytest.mark.engine
def test_a_wrong_served_name_fails_and_a_stand_in_engine_version_is_not_passed(pytester, tmp_path):
    _, report = run_suite(
        pytester, tmp_path, ["wrong-served-name"], "-m", "engine",
        "--engine-version", "0.24.0", "--local-engine-version", "0.23.0",
        "-k", "raw-vllm and (served_model_name or fingerprint or chat_completion_answers)",
    )
    tests = outcomes(report)
    served = tests["test_v1_models_lists_the_served_model_name[deployment/raw-vllm]"]
    assert served["outcome"] == "fail" and "'qwen2.5-0.5b'" in served["reason"] and "qwen2.5'" in served["reason"], served
    # The local engine (0.23.0) is not the version the design names (0.24.0 here): never a pass.
    version = tests["test_fingerprint_names_the_expected_engine[deployment/raw-vllm]"]
    assert version["outcome"] == "skip" and "expected vLLM version" in version["reason"], version
    chat = tests["test_chat_completion_answers_with_choices_and_usage[deployment/raw-vllm]"]
    assert chat["outcome"] == "pass" and chat["substitutions"], chat
    assert {s["subject"] for s in report["substitutions"]} >= {"engine", "model"}


@pytest.mark.testbed
def test_a_virtualservice_for_the_inferenceservice_fails_the_no_virtualservice_test(pytester, tmp_path):
    """Istio's CRD installed, and a VirtualService for qwen-cpu deployed with it: the test sees it."""
    result, report = run_suite(
        pytester, tmp_path, ["virtualservice-for-isvc"],
        "-m", "cpu", "--cluster", "local", "--local-pods", "simulated", "-k", "qwen-cpu and no_virtualservice_over_the_window",
    )
    test = outcomes(report)["test_no_virtualservice_over_the_window[kserve/qwen-cpu]"]
    assert test["outcome"] == "fail", test
    assert "a VirtualService" in test["reason"] and "serving.kserve.io/inferenceservice=qwen-cpu" in test["reason"], test
    assert report["observed"], report


@pytest.mark.testbed
def test_a_route_serving_another_split_than_declared_fails_by_its_counts(pytester, tmp_path):
    """The gateway serves 50/50 while the manifest declares 80/20 (the route drifted after it was
    applied, as an operator or a hand edit would do): the split is judged from real answers."""
    # A plugin module, not a conftest: a conftest beside the run is not loaded for the suite's path.
    pytester.makepyfile(sc_drift=DRIFT)
    _, report = run_suite(pytester, tmp_path, [], "-p", "sc_drift", "-m", "gpu", "--cluster", "local", "-k", "canary_split")
    test = outcomes(report)["test_canary_split_is_served_as_declared[httproute/qwen-canary-split]"]
    assert test["outcome"] == "fail", test
    assert "received" in test["reason"] and "declared 80.0%" in test["reason"] and "outside" in test["reason"], test


# Loaded by the suite's run (`-p sc_drift`): after the deployer applies an HTTPRoute, its
# weights are changed on the cluster to 50/50, out of band.
DRIFT = """
from serving_conformance.platform import deploy

_deploy = deploy.Deployer.deploy


def deploy_with_drift(self, resource):
    _deploy(self, resource)
    if resource.kind == "HTTPRoute":
        body = dict(resource.body)
        rules = [dict(r) for r in body["spec"]["rules"]]
        rules[0]["backendRefs"] = [{**b, "weight": 50} for b in rules[0]["backendRefs"]]
        body["spec"] = {**body["spec"], "rules": rules}
        self.reapply(body, self.namespace_of(resource))


deploy.Deployer.deploy = deploy_with_drift
print("sc_drift: HTTPRoutes are set to 50/50 after they are applied")
"""


@pytest.mark.testbed
def test_a_modelcar_uri_on_another_container_fails_the_modelcar_test(pytester, tmp_path):
    """The predictor is still tested (not left out for want of a URI on kserve-container), and the
    pod KServe makes has no modelcar."""
    _, report = run_suite(
        pytester, tmp_path, ["modelcar-uri-on-another-container"],
        "-m", "gpu", "--cluster", "local", "--local-pods", "simulated", "-k", "qwen-oci and injected_into_the_pod",
    )
    test = outcomes(report)["test_modelcar_is_injected_into_the_pod[kserve/qwen-oci]"]
    assert test["outcome"] == "fail" and "no modelcar sidecar" in test["reason"], test

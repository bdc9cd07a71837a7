"""KServe's default cpu limit of 1 is overridden: the predictor Deployment carries the manifest's limits.

KServe's defaulting webhook fills each missing resource key with the platform default (cpu 1,
memory 2Gi). The control test reproduces the documented trap on this cluster: a predictor that
requests 2 cpu without a limit gets the limit 1, its Deployment is rejected, and KServe records a
Warning naming the cpu limit. That the trap is real is what makes the override worth checking.
"""

import copy

import pytest

from serving_conformance import behaviours as B
from serving_conformance.base.quantity import parse_quantity
from serving_conformance.checks import Ref, WaitTimeout
from serving_conformance.manifests.design import LIMITED_PREDICTORS
from serving_conformance.manifests.workloads import KSERVE_CONTAINER

pytestmark = [pytest.mark.behaviour(B.CPU_LIMIT_OVERRIDE), pytest.mark.workloads(LIMITED_PREDICTORS)]


def predictor_container(deployment):
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == KSERVE_CONTAINER)


def rejection_events(kube, namespace, name):
    return [
        e for e in kube.events_for("InferenceService", name, namespace)
        if e.get("type") == "Warning" and "limit" in (e.get("message") or "")
    ]


@pytest.mark.control_plane
def test_predictor_deployment_carries_the_manifest_limits(workload, deployer, kube, conformance_settings):
    name, namespace = workload.resource.name, deployer.namespace_of(workload.resource)
    deployer.deploy(workload.resource)
    ref = Ref("apps/v1", "Deployment", f"{name}-predictor", namespace)
    try:
        deployment = kube.wait_for(ref, lambda o: o is not None, conformance_settings.timeouts.negative_control, "the predictor Deployment")
    except WaitTimeout:
        events = [e.get("message") for e in rejection_events(kube, namespace, name)]
        pytest.fail(f"{name}: KServe never created {ref}; Warning events: {events or 'none'}", pytrace=False)
    declared = workload.serving_container.resources
    actual = predictor_container(deployment).get("resources", {})
    for resource_name, limit in (declared.get("limits") or {}).items():
        got = (actual.get("limits") or {}).get(resource_name)
        assert got is not None and parse_quantity(got) == parse_quantity(limit), (
            f"{ref} kserve-container limits.{resource_name} is {got!r}, the manifest says {limit!r}"
        )
    for resource_name, request in (actual.get("requests") or {}).items():
        limit = (actual.get("limits") or {}).get(resource_name)
        assert limit is not None and parse_quantity(limit) >= parse_quantity(request), (
            f"{ref} kserve-container requests {resource_name}={request} above its limit {limit!r}"
        )


@pytest.mark.control_plane
def test_a_request_without_a_limit_is_rejected_as_documented(workload, deployer, kube, conformance_settings):
    requests = (workload.serving_container.resources.get("requests") or {})
    if "cpu" not in requests or parse_quantity(requests["cpu"]) <= 1:
        pytest.skip("the control needs a predictor requesting more than KServe's default cpu limit of 1")
    body = copy.deepcopy(dict(workload.resource.body))
    name = f"{workload.resource.name}-no-cpu-limit"
    body["metadata"] = {"name": name, "namespace": deployer.namespace}
    container = next(c for c in body["spec"]["predictor"]["containers"] if c["name"] == KSERVE_CONTAINER)
    container["resources"].get("limits", {}).pop("cpu", None)
    deployer.apply(body)
    ref = Ref("serving.kserve.io/v1beta1", "InferenceService", name, deployer.namespace)
    isvc = kube.wait_for(ref, lambda o: o is not None, conformance_settings.timeouts.pod_created, "the control InferenceService")
    written = next(c for c in isvc["spec"]["predictor"]["containers"] if c["name"] == KSERVE_CONTAINER)
    defaulted = (written.get("resources", {}).get("limits") or {}).get("cpu")
    assert defaulted is not None and parse_quantity(defaulted) == 1, (
        f"KServe's webhook did not default limits.cpu to 1 on {ref}: {written.get('resources')}"
    )
    try:
        event = kube.wait_for_any(
            "v1", "Event", deployer.namespace, f"involvedObject.name={name},type=Warning",
            lambda e: "cpu limit" in (e.get("message") or ""),
            conformance_settings.timeouts.negative_control, "a Warning naming the cpu limit",
        )
    except WaitTimeout as exc:
        pytest.fail(f"{ref} requests cpu 2 with no limit, and the documented trap did not reproduce: {exc}", pytrace=False)
    assert kube.get(Ref("apps/v1", "Deployment", f"{name}-predictor", deployer.namespace)) is None, (
        f"the predictor Deployment of {ref} exists although its request exceeds the defaulted limit "
        f"(KServe said: {event.get('message')})"
    )

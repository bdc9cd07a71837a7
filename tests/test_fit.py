"""Requests fitted to a small cluster's nodes (manifests.fit): lowered by exactly the excess, on the
serving container, limits untouched, listed as stand-ins; nothing changes where the pod fits."""

from serving_conformance.base.data import DEFAULT_MANIFESTS
from serving_conformance.cluster.base import Cluster
from serving_conformance.manifests.fit import Room, fit, fitted_requests, modelcar_requests
from serving_conformance.manifests.load import load_manifests
from serving_conformance.platform.session import request_substitutions

KIND_WORKER = Room({"cpu": "2", "memory": "24576Mi"}, "a kind worker", {"cpu": "10m", "memory": "15Mi"})


def resource(name):
    return next(r for r in load_manifests(DEFAULT_MANIFESTS).resources if r.name == name)


def serving(body):
    spec = body["spec"]
    pod = spec["predictor"] if body["kind"] == "InferenceService" else spec["template"]["spec"]
    return pod["containers"][0]["resources"]


def test_a_modelcar_pod_gives_up_the_sidecars_share_of_cpu_and_keeps_its_limits():
    declared = resource("qwen-oci").body
    body, changes = fit(declared, KIND_WORKER)
    assert serving(body)["requests"]["cpu"] == "1990m"
    assert serving(body)["limits"] == serving(declared)["limits"]
    assert serving(body)["requests"]["memory"] == serving(declared)["requests"]["memory"]
    assert serving(declared)["requests"]["cpu"] == "2", "the manifests themselves are never changed"
    [change] = changes
    sub = change.substitution()
    assert (sub.subject, sub.platform) == ("requests", f"{resource('qwen-oci').ident} predictor kserve-container requests cpu=2")
    assert "cpu=1990m" in sub.here and "a kind worker's allocatable cpu=2" in sub.here and "modelcar (cpu=10m)" in sub.here


def test_a_pod_that_fits_is_deployed_as_declared():
    declared = resource("qwen-cpu").body  # 2 CPUs, no modelcar: fits a 2-CPU worker exactly
    body, changes = fit(declared, KIND_WORKER)
    assert changes == [] and body == declared


def test_no_room_changes_nothing():
    declared = resource("qwen-oci").body
    assert fit(declared, None) == (declared, [])


def test_a_deployment_and_memory_are_fitted_too():
    body, changes = fit(resource("raw-vllm").body, Room({"cpu": "1500m", "memory": "6Gi"}, "a small node"))
    assert serving(body)["requests"]["cpu"] == "1500m" and serving(body)["requests"]["memory"] == "6144Mi"
    assert serving(body)["limits"]["cpu"] == "4" and serving(body)["limits"]["memory"] == "16Gi"
    assert [(c.resource, c.declared, c.fitted) for c in changes] == [("cpu", "2", "1500m"), ("memory", "8Gi", "6144Mi")]


def test_a_limit_without_a_request_is_fitted_with_an_explicit_request():
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "vllm", "image": "vllm/vllm-openai:v0.23.0", "resources": {"limits": {"cpu": "3"}}}]}}}}
    fitted, [change] = fit(body, Room({"cpu": "2"}, "a node"))
    assert serving(fitted) == {"limits": {"cpu": "3"}, "requests": {"cpu": "2000m"}}
    assert change.declared == "3"


def test_a_pod_that_cannot_fit_at_all_is_left_to_stay_pending():
    body, changes = fit(resource("qwen-oci").body, Room({"cpu": "5m"}, "a tiny node", {"cpu": "10m"}))
    assert changes == [] and serving(body)["requests"]["cpu"] == "2"


def test_the_modelcar_requests_come_from_kserves_storage_initializer_setting():
    assert modelcar_requests({"enableModelcar": True, "cpuModelcar": "10m", "memoryModelcar": "15Mi"}) == {
        "cpu": "10m", "memory": "15Mi"}
    assert modelcar_requests({"enableModelcar": False, "cpuModelcar": "10m"}) == {}
    assert modelcar_requests({"enableModelcar": True, "cpuModelcar": "lots"}) == {}


def test_the_report_lists_each_lowered_request_of_the_serving_workloads():
    manifests = load_manifests(DEFAULT_MANIFESTS)
    cluster = Cluster("kind", "c", DEFAULT_MANIFESTS, None, True, room=KIND_WORKER.to_json())
    subs = request_substitutions(cluster, manifests)
    assert {s.platform for s in subs} == {f"{c.workload} {c.container} requests cpu=2"
                                          for c in fitted_requests(manifests.resources, KIND_WORKER)}
    assert any("qwen-oci" in s.platform for s in subs) and not any("qwen-cpu" in s.platform for s in subs)
    assert request_substitutions(Cluster("kind", "c", DEFAULT_MANIFESTS, None, True), manifests) == []


def test_the_room_survives_the_clusters_record():
    cluster = Cluster("kind", "c", DEFAULT_MANIFESTS, None, True, room=KIND_WORKER.to_json())
    assert Room.from_json(Cluster.from_json(cluster.to_json()).room) == KIND_WORKER


def test_the_deployer_applies_the_fitted_request():
    from serving_conformance.platform.deploy import Deployer

    applied = []

    class Kube:
        def apply(self, body, namespace=None):
            applied.append(body)
            return body

    deployer = Deployer(Kube(), "ns", None, "kserve", "run", lambda _: None, room=KIND_WORKER)
    deployer.apply(resource("qwen-oci").body)
    assert serving(applied[0])["requests"]["cpu"] == "1990m"
    plain = Deployer(Kube(), "ns", None, "kserve", "run", lambda _: None)
    plain.apply(resource("qwen-oci").body)
    assert serving(applied[1])["requests"]["cpu"] == "2"

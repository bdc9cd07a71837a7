"""No wait outlasts a workload's own start-up when nothing can come: a workload scaled to nothing is
deployed with one replica (and says so), a wait stops at once with the reason when what it awaits
cannot happen (pods refused, an image that cannot be pulled, a crash loop, no node that can ever
hold the pod), and a watch that stays quiet longer than its read timeout is no failure."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from serving_conformance.base.features import Feature
from serving_conformance.cluster import hopeless
from serving_conformance.cluster import kube as kube_module
from serving_conformance.cluster.kube import Kube, Ref, WaitHopeless, WaitTimeout
from serving_conformance.gate import Needs, Place, decide
from serving_conformance.manifests.load import load_manifests
from serving_conformance.manifests.scale import scale_up, scaled_workloads

REPO = Path(__file__).resolve().parent.parent
PLATFORM_REPO = REPO / "fixtures" / "platform-repo"


def deployment(replicas) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "raw-vllm", "namespace": "raw-vllm"},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "vllm", "image": "x"}]}}}}


# --- scaled to nothing ---------------------------------------------------------------------------


@pytest.mark.parametrize("replicas", [0, "0"])
def test_a_deployment_scaled_to_nothing_is_deployed_with_one_replica(replicas):
    body = deployment(replicas)
    scaled, changes = scale_up(body)
    assert scaled["spec"]["replicas"] == 1 and changes == ["replicas: 0"]
    assert body["spec"]["replicas"] == replicas  # what is judged stays as written


@pytest.mark.parametrize("replicas", [1, 3, None, False])
def test_other_replica_counts_are_deployed_as_declared(replicas):
    body = deployment(replicas)
    assert scale_up(body) == (body, [])


def test_an_inferenceservice_with_min_replicas_zero_gets_one():
    body = {"kind": "InferenceService", "metadata": {"name": "q"},
            "spec": {"predictor": {"minReplicas": 0}, "transformer": {"minReplicas": 2}}}
    scaled, changes = scale_up(body)
    assert scaled["spec"]["predictor"]["minReplicas"] == 1 and scaled["spec"]["transformer"]["minReplicas"] == 2
    assert changes == ["predictor.minReplicas: 0"]


def test_the_platform_repository_raw_vllm_stand_in_names_its_paused_autoscaler():
    manifests = load_manifests(PLATFORM_REPO)
    scaled = {s.workload: s for s in scaled_workloads(manifests.resources, manifests)}
    raw = scaled["deployment/raw-vllm/raw-vllm"]
    assert raw.declared == "replicas: 0"
    assert raw.autoscalers == ("KEDA ScaledObject raw-vllm paused at 0",)
    sub = raw.substitution()
    assert sub.subject == "replicas" and "paused at 0" in sub.platform and sub.here.startswith("1 replica")


def test_a_scoped_stand_in_qualifies_only_the_results_that_involve_its_workload():
    sub = scaled_workloads([load_manifests(PLATFORM_REPO).find("Deployment", "raw-vllm")],
                           load_manifests(PLATFORM_REPO))[0].substitution()
    place = Place("p", frozenset({Feature.SERVING, Feature.GATEWAY}), (sub,))
    rests_on = frozenset({"replicas", "engine"})
    raw = Needs(frozenset({Feature.SERVING}), rests_on, involves=frozenset({"deployment/raw-vllm/raw-vllm"}))
    assert decide(raw, place).substitutions == (sub,)
    other = Needs(frozenset({Feature.SERVING}), rests_on, involves=frozenset({"kserve/kserve/qwen-cpu"}))
    assert decide(other, place).substitutions == ()


# --- what cannot happen --------------------------------------------------------------------------


def pod(**status) -> dict:
    return {"metadata": {"name": "p", "namespace": "n"},
            "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.23.0",
                                     "resources": {"requests": {"cpu": "2", "memory": "4Gi"}}}]},
            "status": status}


NODES = [{"status": {"allocatable": {"cpu": "2", "memory": "8Gi"}}},
         {"status": {"allocatable": {"cpu": "4", "memory": "4Gi"}}}]


def waiting(reason: str, restarts: int = 0, message: str = "") -> dict:
    return {"containerStatuses": [{"name": "vllm", "restartCount": restarts,
                                   "state": {"waiting": {"reason": reason, "message": message}},
                                   "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}


def unschedulable(message: str) -> dict:
    return {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]}


@pytest.mark.parametrize("status, words", [
    (waiting("ImagePullBackOff", message="Back-off pulling image"), "cannot get its image 'vllm/vllm-openai:v0.23.0'"),
    (waiting("InvalidImageName"), "InvalidImageName"),
    (waiting("CrashLoopBackOff", restarts=3), "keeps crashing (restarted 3 times; last exit code 1 (Error))"),
])
def test_a_pod_that_waiting_cannot_mend_is_stuck(status, words):
    assert words in hopeless.stuck_pod(pod(**status), NODES)


@pytest.mark.parametrize("status", [
    waiting("ErrImagePull"),  # the kubelet pulls again
    waiting("CrashLoopBackOff", restarts=1),
    waiting("ContainerCreating"),
    unschedulable("0/2 nodes are available: 2 Insufficient cpu."),  # fits an empty node: room may come
    {"phase": "Running"},
])
def test_a_pod_that_may_still_come_is_not_stuck(status):
    assert hopeless.stuck_pod(pod(**status), NODES) is None


def test_a_pod_no_node_can_ever_hold_is_stuck():
    big = pod(**unschedulable("0/2 nodes are available: 2 Insufficient memory."))
    big["spec"]["containers"][0]["resources"]["requests"]["memory"] = "16Gi"
    why = hopeless.stuck_pod(big, NODES)
    assert "memory=17179869184" in why and "no node of this cluster can ever hold it" in why


def test_an_init_container_counts_where_it_asks_more():
    p = pod()
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"limits": {"cpu": "8"}}}]
    assert hopeless.pod_requests(p)["cpu"] == 8
    assert "cpu=8" in hopeless.never_fits(p, NODES)


def test_a_deployment_scaled_to_nothing_or_refused_is_hopeless():
    assert "replicas: 0" in hopeless.scaled_to_nothing(deployment(0))
    assert hopeless.scaled_to_nothing(deployment(1)) is None
    refused = deployment(1) | {"status": {"conditions": [{
        "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
        "message": 'admission webhook "inferenceservice.kserve-webhook-server.pod-mutator" denied the request: '
                   "Missing kserve-container"}]}}
    assert "Missing kserve-container" in hopeless.refused_pods(refused)
    quota = deployment(1) | {"status": {"conditions": [{
        "type": "ReplicaFailure", "status": "True", "message": "exceeded quota: compute, retrying"}]}}
    assert hopeless.refused_pods(quota) is None


# --- against an API server: the wait stops, a quiet watch is no failure -----------------------------


class QuietApi(ThreadingHTTPServer):
    """Discovery, a list that holds one object (or none), and watches that send headers and then
    nothing: a quiet object, as a loaded API server keeps it."""

    daemon_threads = True

    def __init__(self, obj: dict | None) -> None:
        self.obj = obj
        self.watches = 0
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Handler(BaseHTTPRequestHandler):
    server: QuietApi

    def log_message(self, *args) -> None:
        pass

    def answer(self, data: dict) -> None:
        body = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if "watch=true" in self.path:
            self.server.watches += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            time.sleep(30)  # never an event
            return
        if path == "/version":
            return self.answer({"major": "1", "minor": "34", "gitVersion": "v1.34.3"})
        if path == "/api":
            return self.answer({"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            return self.answer({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        if path == "/api/v1":
            return self.answer({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "configmaps", "singularName": "configmap", "namespaced": True, "kind": "ConfigMap",
                 "verbs": ["get", "list", "watch"]}]})
        items = [self.server.obj] if self.server.obj is not None else []
        return self.answer({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"},
                            "items": items})


@pytest.fixture
def quiet_kube(tmp_path, monkeypatch):
    monkeypatch.setattr(kube_module, "WATCH_READ_MARGIN_S", 0.5)
    servers = []

    def make(obj: dict | None) -> tuple[Kube, QuietApi]:
        server = QuietApi(obj)
        servers.append(server)
        path = tmp_path / f"kubeconfig-{len(servers)}"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        }))
        return Kube(path, request_timeout=5), server

    yield make
    for server in servers:
        server.shutdown()


CONFIG = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "n", "resourceVersion": "7"}}


def test_a_quiet_watch_reconnects_until_the_deadline(quiet_kube):
    kube, server = quiet_kube(None)
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        kube.wait_for(Ref("v1", "ConfigMap", "x", "n"), lambda o: o is not None, 4, "the ConfigMap to appear")
    assert 4 <= time.monotonic() - started < 10
    assert "timed out after 4s waiting for the ConfigMap to appear" in str(caught.value)
    assert server.watches >= 2  # reconnected after a read timeout, not failed by it


def test_a_quiet_watch_keeps_an_absence_window(quiet_kube):
    kube, server = quiet_kube(None)
    started = time.monotonic()
    kube.consistently([("v1", "ConfigMap", "n", None)], lambda o: "there", 4)
    assert 4 <= time.monotonic() - started < 10 and server.watches >= 2


def test_a_doomed_wait_stops_at_once_with_the_reason(quiet_kube):
    kube, _ = quiet_kube(CONFIG)
    started = time.monotonic()
    with pytest.raises(WaitHopeless) as caught:
        kube.wait_for(Ref("v1", "ConfigMap", "x", "n"), lambda o: False, 300, "Ready",
                      doomed=lambda o: "its pods are refused" if o is not None else None)
    assert time.monotonic() - started < 3
    assert str(caught.value) == "stopped waiting for Ready (ConfigMap n/x): its pods are refused"

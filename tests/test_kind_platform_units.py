"""The offline kind platform's pieces that need no cluster: the KServe release as rendered here
for kind (the manager built here, no kube-rbac-proxy, on the control plane), and the manifests'
engine images and oci:// models mapped to the images built here."""

from pathlib import Path

from serving_conformance.base.data import DEFAULT_MANIFESTS
from serving_conformance.cluster.releases import (
    CONTROL_PLANE_LABEL,
    KUBE_RBAC_PROXY,
    BuiltHere,
    traefik_documents,
    with_manager_image,
)
from serving_conformance.manifests.images import stand_in_pairs
from serving_conformance.manifests.load import load_manifests
from serving_conformance.providers.kind_platform import venv_python_home

REPO = Path(__file__).resolve().parent.parent


def manager_deployment():
    return {"kind": "Deployment", "metadata": {"name": "kserve-controller-manager"}, "spec": {"template": {"spec": {
        "containers": [{"name": "manager", "image": "kserve/kserve-controller:latest", "imagePullPolicy": "Always"},
                       {"name": KUBE_RBAC_PROXY, "image": "quay.io/brancz/kube-rbac-proxy:v0.18.0"}]}}}}


def test_the_manager_runs_the_image_built_here_never_pulled_and_without_its_metrics_proxy():
    pod = with_manager_image(manager_deployment(), "localhost/sc/kserve-manager:v0.19.0")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["manager"]
    assert pod["containers"][0]["image"] == "localhost/sc/kserve-manager:v0.19.0"
    assert pod["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_other_deployments_are_left_as_released():
    other = {"kind": "Deployment", "metadata": {"name": "other"}, "spec": {"template": {"spec": {"containers": [
        {"name": KUBE_RBAC_PROXY, "image": "x"}]}}}}
    assert with_manager_image(other, "y")["spec"]["template"]["spec"]["containers"][0]["image"] == "x"


def test_the_platform_pods_go_to_the_control_plane_only_when_asked():
    placed = BuiltHere("0.19.0", Path("/nonexistent"), "traefik:1", on_control_plane=True)
    pod = next(d for d in placed.documents("gateway-controller") if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {CONTROL_PLANE_LABEL: ""}
    assert {"key": CONTROL_PLANE_LABEL, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    plain = next(d for d in traefik_documents("traefik:1") if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert "nodeSelector" not in plain


def test_every_engine_image_and_oci_model_of_the_manifests_has_a_stand_in():
    manifests = load_manifests(DEFAULT_MANIFESTS)
    pairs = stand_in_pairs(manifests.resources, "localhost/sc/vllm-cpu:0.23.0", "localhost/sc/modelcar:1")
    engines = {k for k, v in pairs.items() if v == "localhost/sc/vllm-cpu:0.23.0"}
    assert engines == {
        "vllm/vllm-openai:v0.23.0@sha256:6d8429e38e3747723ca07ee1b17972e09bb9c51c4032b266f24fb1cc3b22ed8f",
        "vllm/vllm-openai-cpu:v0.23.0-x86_64@sha256:6240a6bba604e607300e47490e3477211f968bdf125211bb877d19a70b8fe844",
    }
    models = {k: v for k, v in pairs.items() if k.startswith("oci://")}
    assert models and set(models.values()) == {"oci://localhost/sc/modelcar:1"}


def test_the_cpython_of_a_venv_is_read_from_its_config(tmp_path):
    (tmp_path / "pyvenv.cfg").write_text("home = /opt/python/3.11.7/bin\ninclude-system-site-packages = false\n")
    assert venv_python_home(tmp_path) == Path("/opt/python/3.11.7")


def collected_workloads(pytester, cluster: str) -> list[str]:
    from serving_conformance.base.data import SUITE

    result = pytester.runpytest_subprocess(str(SUITE), "--manifests-dir", str(DEFAULT_MANIFESTS), "-m", "gpu",
                                           "--cluster", cluster, "--collect-only", "-q", "-p", "no:cacheprovider")
    return [line.rsplit("[", 1)[1].rstrip("]") for line in result.stdout.lines if "cluster/test_" in line and "[" in line]


def runs(sequence: list[str]) -> list[str]:
    """The sequence with repeats collapsed: one entry per run of equal neighbours."""
    return [x for i, x in enumerate(sequence) if i == 0 or sequence[i - 1] != x]


def test_on_kind_the_cluster_tests_run_grouped_by_workload(pytester):
    """kind holds two vLLM pods at once: each workload's tests come together, so it can go after
    (the split route's test, which needs two, sits among the first of them)."""
    order = [w for w in collected_workloads(pytester, "kind") if not w.startswith("httproute/")]
    assert len(runs(order)) == len(set(order)), runs(order)


def test_on_the_testbed_the_order_is_by_module(pytester):
    order = collected_workloads(pytester, "local")
    assert len(runs(order)) > len(set(order)), runs(order)


def test_workloads_no_later_test_needs_are_released_and_only_those():
    from serving_conformance.platform.deploy import Deployer

    deleted = []

    class Kube:
        def delete(self, ref):
            deleted.append((ref.kind, ref.name, ref.namespace))

    deployer = Deployer(Kube(), "ns", None, "kserve", "run", lambda _: None)
    deployer.applied = {"InferenceService/ns/qwen-stable", "InferenceService/ns/qwen-canary",
                        "Deployment/ns/raw-vllm", "Service/ns/raw-vllm", "HTTPRoute/ns/split"}
    deployer.release_except({("InferenceService", "qwen-canary"), ("Deployment", "raw-vllm")})
    assert deleted == [("InferenceService", "qwen-stable", "ns")]
    assert "InferenceService/ns/qwen-stable" not in deployer.applied
    assert {"InferenceService/ns/qwen-canary", "Service/ns/raw-vllm"} <= deployer.applied


def test_the_room_of_a_kind_worker_is_the_smallest_allocatable_among_the_workers():
    from serving_conformance.providers.kind import worker_room

    nodes = [{"status": {"allocatable": {"cpu": "2", "memory": "24000Mi", "nvidia.com/gpu": "4"}}},
             {"status": {"allocatable": {"cpu": "1500m", "memory": "30Gi", "nvidia.com/gpu": "4"}}}]
    room = worker_room(nodes)
    assert room.allocatable == {"cpu": "1500m", "memory": "24000Mi"} and room.where == "a kind worker"


def test_the_device_plugins_cache_key_follows_its_own_source(tmp_path, monkeypatch):
    import shutil

    from serving_conformance.toolchain import go

    component = go.gpu_device_plugin_component()
    assert component.own_source and component in go.kind_node_components()
    assert component.version == go.kubernetes_staging_version() == "v0." + go.versions.KUBERNETES.split(".", 1)[1]
    shutil.copytree(component.wrapper_dir, tmp_path / component.name)
    monkeypatch.setattr(go, "TOOLCHAIN_DIR", tmp_path)
    before = go._wrapper_hash(component)
    (tmp_path / component.name / "main.go").write_text("package main\n")
    assert go._wrapper_hash(component) != before, "a change to main.go must rebuild the plugin"
    # never rewritten from an upstream go.mod (it has none of its own)
    synced = []
    monkeypatch.setattr(go, "_render_wrapper_gomod", lambda c: synced.append(c.name) or "")
    monkeypatch.setattr(go, "_run", lambda *a, **k: "")
    go.sync_wrappers(log=lambda _: None, names=[component.name])
    assert synced == []

"""Contract tests of the commands sent to kind and docker where a real run cannot show them (a
failed create, an old kind, no engine, a reused or kept cluster), and the context guard. The real
kind cluster is booted by tests/test_kind_cluster.py (marker `kind`)."""

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

from serving_conformance.base import versions
from serving_conformance.cluster.base import Cluster, ProviderError
from serving_conformance.providers.choose import choose_provider
from serving_conformance.providers.existing import ExistingProvider
from serving_conformance.providers.kind import KIND_WORKERS, KindProvider, cluster_config
from serving_conformance.toolchain.docker import KIND_NETWORK, KIND_NETWORK_SUBNET
from tests.conftest import base_settings

FAKE = """#!{python}
import json, os, sys
log = os.environ["FAKE_LOG"]
with open(log, "a") as f:
    f.write(json.dumps({{"argv": [os.path.basename(sys.argv[0])] + sys.argv[1:],
                        "network": os.environ.get("KIND_EXPERIMENTAL_DOCKER_NETWORK")}}) + "\\n")
state = json.loads(os.environ.get("FAKE_STATE", "{{}}"))
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
if name == "docker":
    if args[:2] == ["network", "inspect"]:
        print(json.dumps([{{"Subnet": "{subnet}"}}]))
    sys.exit(0 if state.get("docker", True) else 1)
if args[:1] == ["version"]:
    print(state.get("version", "kind v0.30.0 go1.24.6 linux/amd64"))
elif args[:2] == ["get", "clusters"]:
    print("\\n".join(state.get("clusters", [])))
elif args[:2] == ["get", "kubeconfig"]:
    print("apiVersion: v1\\nkind: Config\\nclusters: []\\ncontexts: []\\nusers: []\\n")
elif args[:2] == ["create", "cluster"]:
    sys.exit(state.get("create_rc", 0))
"""


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("kind", "docker"):
        path = bin_dir / tool
        path.write_text(FAKE.format(python=sys.executable, subnet=KIND_NETWORK_SUBNET))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "calls.jsonl"
    # A private cache: no kind built here, so the `kind` on PATH (the fake) is the one used.
    monkeypatch.setenv("SERVING_CONFORMANCE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))

    def calls(tool="kind", with_env=False):
        if not log.exists():
            return []
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        return [(e["argv"][1:], e["network"]) if with_env else e["argv"][1:] for e in entries if e["argv"][0] == tool]

    def state(**values):
        monkeypatch.setenv("FAKE_STATE", json.dumps(values))

    return calls, state


def kind_provider(settings, tmp_path):
    return KindProvider(settings, tmp_path, log=lambda _: None, node_image=lambda extra: "sc.local/kind-node:test",
                        with_platform=False)


def test_a_failed_create_uses_the_built_node_image_and_kinds_network_then_removes_the_half_cluster(fake_tools, tmp_path):
    calls, state = fake_tools
    state(clusters=[], create_rc=1)
    with pytest.raises(ProviderError, match="could not create"):
        kind_provider(base_settings(cluster="kind"), tmp_path).start()
    kubeconfig = str(tmp_path / "kind-kubeconfig.yaml")
    create = [c for c in calls(with_env=True) if c[0][:2] == ["create", "cluster"]]
    assert create == [([
        "create", "cluster", "--name", "serving-conformance", "--config", str(tmp_path / "kind-cluster.yaml"),
        "--image", "sc.local/kind-node:test", "--kubeconfig", kubeconfig,
    ], KIND_NETWORK)]
    assert calls()[-1] == ["delete", "cluster", "--name", "serving-conformance", "--kubeconfig", kubeconfig]
    config = yaml.safe_load((tmp_path / "kind-cluster.yaml").read_text())
    assert config == cluster_config()
    assert [n["role"] for n in config["nodes"]] == ["control-plane"] + ["worker"] * KIND_WORKERS
    assert config["networking"] == {
        "ipFamily": "ipv4", "apiServerAddress": "127.0.0.1", "disableDefaultCNI": True, "kubeProxyMode": "iptables",
        "podSubnet": "198.19.128.0/17", "serviceSubnet": "198.19.64.0/20",
    }
    assert not [c for c in calls("docker") if c[:2] == ["network", "create"]]  # the network existed


def test_kind_reuses_a_cluster_of_the_same_name_and_never_deletes_it(fake_tools, tmp_path):
    calls, state = fake_tools
    state(clusters=["serving-conformance"])
    provider = kind_provider(base_settings(cluster="kind"), tmp_path)
    cluster = provider.start()
    provider.stop(cluster)
    assert not cluster.created
    assert not [c for c in calls() if c[0] in ("create", "delete")]
    assert ["get", "kubeconfig", "--name", "serving-conformance"] in calls()


def test_a_reused_kind_cluster_is_described_by_its_nodes(fake_tools, tmp_path, monkeypatch):
    """A cluster kept from an earlier run: its labels give the stand-ins, its workers the room."""
    from serving_conformance.providers import kind as kind_module

    _, state = fake_tools
    state(clusters=["serving-conformance"])
    nodes = [{"metadata": {"name": "cp", "labels": {"node-role.kubernetes.io/control-plane": "",
                                                      kind_module.POD_NETWORK_LABEL: kind_module.POD_NETWORK_VALUE}},
              "status": {"allocatable": {"cpu": "2", "memory": "20Gi"}}},
             {"metadata": {"name": "w", "labels": {kind_module.SIMULATED_GPU_LABEL: "true"}},
              "status": {"allocatable": {"cpu": "2", "memory": "23Gi"}}}]
    monkeypatch.setattr(kind_module, "Kube", lambda *a, **k: type("K", (), {"list": lambda self, *a, **k: nodes})())
    cluster = kind_provider(base_settings(cluster="kind"), tmp_path).start()
    assert {s.subject for s in cluster.substitutions} == {"gpu", "pod-network"}
    assert cluster.room["allocatable"] == {"cpu": "2", "memory": "23Gi"}, "the workers' room, not the control plane's"


def test_keep_cluster_keeps_what_kind_created(fake_tools, tmp_path):
    calls, _ = fake_tools
    created = Cluster(provider="kind", name="serving-conformance", kubeconfig=tmp_path / "k", context=None, created=True)
    kind_provider(base_settings(cluster="kind", keep_cluster=True), tmp_path).stop(created)
    assert not [c for c in calls() if c[0] == "delete"]
    kind_provider(base_settings(cluster="kind"), tmp_path).stop(created)
    assert [c for c in calls() if c[0] == "delete"]


def test_an_old_kind_on_path_is_refused(fake_tools, tmp_path):
    _, state = fake_tools
    state(version="kind v0.20.0 go1.20 linux/amd64")
    with pytest.raises(ProviderError, match=f"older than the {versions.KIND_MIN}"):
        kind_provider(base_settings(cluster="kind"), tmp_path).start()


def test_kind_without_a_container_engine_is_refused_saying_how_to_set_one_up(fake_tools, tmp_path):
    _, state = fake_tools
    state(docker=False)
    with pytest.raises(ProviderError, match="container engine.*prepare --for-cluster kind"):
        kind_provider(base_settings(cluster="kind"), tmp_path).start()


def test_without_kind_or_go_it_says_how_to_get_kind(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVING_CONFORMANCE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ProviderError, match="neither built nor on PATH.*prepare --for-cluster kind"):
        kind_provider(base_settings(cluster="kind"), tmp_path).start()


def test_auto_takes_the_local_testbed_without_a_container_engine(fake_tools, tmp_path):
    _, state = fake_tools
    state(docker=False)
    said = []
    provider = choose_provider(base_settings(cluster="auto"), tmp_path, said.append)
    assert provider.name == "local" and "local testbed" in said[0]


def kubeconfig(tmp_path, current="gke_prod", contexts=("gke_prod", "gke_ci")) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "contexts": [{"name": c, "context": {"cluster": c, "user": c}} for c in contexts],
        "clusters": [], "users": [],
    }))
    return path


def test_existing_refuses_a_context_not_allowed(tmp_path):
    provider = ExistingProvider(base_settings(cluster="existing", kubeconfig=kubeconfig(tmp_path)), tmp_path)
    with pytest.raises(ProviderError, match="refusing to touch context 'gke_prod'.*--allow-context gke_prod"):
        provider.start()


def test_existing_takes_an_allowed_context_and_never_deletes(tmp_path):
    settings = base_settings(cluster="existing", kubeconfig=kubeconfig(tmp_path), kube_context="gke_ci",
                             allowed_contexts=("gke_ci",))
    cluster = ExistingProvider(settings, tmp_path).start()
    assert cluster.context == "gke_ci" and not cluster.created


def test_existing_rejects_an_unknown_context(tmp_path):
    settings = base_settings(cluster="existing", kubeconfig=kubeconfig(tmp_path), kube_context="nope",
                             allowed_contexts=("nope",))
    with pytest.raises(ProviderError, match="not in"):
        ExistingProvider(settings, tmp_path).start()

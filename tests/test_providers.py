"""Contract tests of the commands sent to what cannot run here (kind, docker), and the context guard."""

import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from serving_conformance.base import versions
from serving_conformance.base.data import KIND_CONFIG
from serving_conformance.cluster.base import ProviderError
from serving_conformance.providers.choose import choose_provider
from serving_conformance.providers.existing import ExistingProvider
from serving_conformance.providers.kind import KindProvider
from tests.conftest import base_settings

FAKE = """#!{python}
import json, os, sys
log = os.environ["FAKE_LOG"]
with open(log, "a") as f:
    f.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\\n")
state = json.loads(os.environ.get("FAKE_STATE", "{{}}"))
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
if name == "docker":
    sys.exit(0 if state.get("docker", True) else 1)
if args[:1] == ["version"]:
    print(state.get("version", "kind v0.30.0 go1.24.6 linux/amd64"))
elif args[:2] == ["get", "clusters"]:
    print("\\n".join(state.get("clusters", [])))
elif args[:2] == ["get", "kubeconfig"]:
    print("apiVersion: v1\\nkind: Config\\n")
elif args[:2] == ["create", "cluster"]:
    sys.exit(state.get("create_rc", 0))
"""


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    import sys

    for tool in ("kind", "docker"):
        path = bin_dir / tool
        path.write_text(FAKE.format(python=sys.executable))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))

    def calls(tool="kind"):
        if not log.exists():
            return []
        return [c[1:] for c in map(json.loads, log.read_text().splitlines()) if c[0] == tool]

    def state(**values):
        monkeypatch.setenv("FAKE_STATE", json.dumps(values))

    return calls, state


def test_kind_creates_a_cluster_with_the_pinned_node_image_and_config(fake_tools, tmp_path):
    calls, state = fake_tools
    state(clusters=[])
    provider = KindProvider(base_settings(cluster="kind"), tmp_path)
    cluster = provider.start()
    create = [c for c in calls() if c[:2] == ["create", "cluster"]]
    assert create == [[
        "create", "cluster", "--name", "serving-conformance", "--config", str(KIND_CONFIG),
        "--image", f"kindest/node:v{versions.KIND_NODE_IMAGE_K8S}",
        "--kubeconfig", str(tmp_path / "kind-kubeconfig.yaml"), "--wait", "300s",
    ]]
    assert cluster.created and cluster.context == "kind-serving-conformance"
    provider.stop(cluster)
    assert calls()[-1] == ["delete", "cluster", "--name", "serving-conformance", "--kubeconfig", str(tmp_path / "kind-kubeconfig.yaml")]


def test_kind_reuses_a_cluster_of_the_same_name_and_never_deletes_it(fake_tools, tmp_path):
    calls, state = fake_tools
    state(clusters=["serving-conformance"])
    provider = KindProvider(base_settings(cluster="kind"), tmp_path)
    cluster = provider.start()
    provider.stop(cluster)
    assert not cluster.created
    assert not [c for c in calls() if c[0] in ("create", "delete")]
    assert ["get", "kubeconfig", "--name", "serving-conformance"] in calls()


def test_keep_cluster_keeps_what_kind_created(fake_tools, tmp_path):
    calls, state = fake_tools
    state(clusters=[])
    provider = KindProvider(base_settings(cluster="kind", keep_cluster=True), tmp_path)
    provider.stop(provider.start())
    assert not [c for c in calls() if c[0] == "delete"]


def test_a_failed_create_removes_the_half_cluster(fake_tools, tmp_path):
    calls, state = fake_tools
    state(clusters=[], create_rc=1)
    with pytest.raises(ProviderError, match="could not create"):
        KindProvider(base_settings(cluster="kind"), tmp_path).start()
    assert calls()[-1][:2] == ["delete", "cluster"]


def test_an_old_kind_is_refused(fake_tools, tmp_path):
    _, state = fake_tools
    state(version="kind v0.20.0 go1.20 linux/amd64")
    with pytest.raises(ProviderError, match=f"older than the {versions.KIND_MIN}"):
        KindProvider(base_settings(cluster="kind"), tmp_path).start()


def test_kind_without_a_container_engine_is_refused(fake_tools, tmp_path):
    _, state = fake_tools
    state(docker=False)
    with pytest.raises(ProviderError, match="container engine"):
        KindProvider(base_settings(cluster="kind"), tmp_path).start()


def test_missing_kind_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ProviderError, match="not on PATH"):
        KindProvider(base_settings(cluster="kind"), tmp_path).start()


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

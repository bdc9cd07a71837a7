"""What the kind node image and its pod network are made of, checked without building them (the
real build and boot: tests/test_kind_cluster.py, marker `kind`)."""

from __future__ import annotations

import json
import tarfile

import pytest

from serving_conformance.base import versions
from serving_conformance.providers import kindnet
from serving_conformance.toolchain import kindnode, oci

# The shape of kind v0.33.0's images/base/files/etc/containerd/config.toml (abridged comments).
KIND_CONTAINERD_CONFIG = """version = 2

[proxy_plugins]
# fuse-overlayfs is used for rootless
[proxy_plugins."fuse-overlayfs"]
  type = "snapshot"
  address = "/run/containerd-fuse-overlayfs.sock"

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
  base_runtime_spec = "/etc/containerd/cri-base.json"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = true
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.test-handler]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.test-handler.options]
    SystemdCgroup = true

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  tolerate_missing_hugepages_controller = true
  restrict_oom_score_adj = false
"""


def test_the_nodes_containerd_config_is_kinds_changed_for_this_kind_of_machine():
    config = kindnode.containerd_config(KIND_CONTAINERD_CONFIG)
    assert f'sandbox_image = "registry.k8s.io/pause:{versions.PAUSE}"' in config
    assert "restrict_oom_score_adj = true" in config  # no CAP_SYS_RESOURCE: -998 would fail
    assert config.count("SystemdCgroup = false") == 2 and "SystemdCgroup = true" not in config
    assert "fuse-overlayfs" not in config and "proxy_plugins" not in config
    assert 'snapshotter = "overlayfs"' in config


def test_a_changed_kind_containerd_config_is_not_patched_blindly():
    with pytest.raises(kindnode.NodeImageError, match="changed shape"):
        kindnode.containerd_config(KIND_CONTAINERD_CONFIG.replace("SystemdCgroup = true", "SystemdCgroup=true"))


def test_the_images_are_named_as_kubeadm_expects(tmp_path):
    # `kubeadm config images list --kubernetes-version v1.34.3`
    expected = {
        "registry.k8s.io/kube-apiserver:v1.34.3", "registry.k8s.io/kube-controller-manager:v1.34.3",
        "registry.k8s.io/kube-scheduler:v1.34.3", "registry.k8s.io/kube-proxy:v1.34.3",
        "registry.k8s.io/coredns/coredns:v1.12.1", "registry.k8s.io/pause:3.10.1", "registry.k8s.io/etcd:3.6.5-0",
    }
    specs = kindnode.image_specs(tmp_path, tmp_path, tmp_path, tmp_path / "pause")
    assert {s.name for s in specs} == expected
    pause = next(s for s in specs if "pause" in s.name)
    assert pause.user == "65535:65535" and pause.entrypoint == ("/pause",)


def test_an_extra_image_is_known_by_its_layouts_name_and_digest(tmp_path):
    built = oci.write_layout(tmp_path / "x.tar", "example.local/extra:1", [oci.Layer(files=(("/hello", b"hi", 0o644),))],
                             oci.ImageConfig())
    assert kindnode.layout_identity(built.path) == ("example.local/extra:1", built.digest)
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as tar:
        tar.add(tmp_path / "x.tar", arcname="x.tar")
    with pytest.raises(kindnode.NodeImageError, match="not an OCI image layout"):
        kindnode.layout_identity(plain)


def test_each_node_gets_a_ptp_conflist_for_its_own_pod_cidr_without_masquerade():
    config = kindnet.conflist("198.19.129.0/24")
    ptp, portmap = config["plugins"]
    assert ptp["type"] == "ptp" and ptp["ipMasq"] is False
    assert ptp["ipam"]["ranges"] == [[{"subnet": "198.19.129.0/24"}]]
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}
    json.dumps(config)
    # pod-to-pod keeps its addresses; traffic leaving the pod network is masqueraded by the node
    rule = kindnet.masquerade_rule("198.19.128.0/17")
    assert rule[:6] == ["POSTROUTING", "-s", "198.19.128.0/17", "!", "-d", "198.19.128.0/17"]
    assert rule[-2:] == ["-j", "MASQUERADE"]


def test_configure_nodes_writes_conflists_and_routes_to_the_other_nodes_only(tmp_path):
    import subprocess

    sent: list[tuple[list[str], str | None]] = []

    def run(args, timeout=None, input=None):
        sent.append((args, input))
        checking = args[3:6] == ["iptables", "-t", "nat"] and "-C" in args
        return subprocess.CompletedProcess(args, 1 if checking else 0, "", "")

    routes = [kindnet.NodeRoute("cp", "198.19.32.2", "198.19.128.0/24"),
              kindnet.NodeRoute("w1", "198.19.32.3", "198.19.129.0/24")]
    kindnet.configure_nodes(run, "docker", routes, "198.19.128.0/17", 30)
    on_w1 = [a[3:] for a, _ in sent if a[:3] == ["docker", "exec", "w1"] or a[:4] == ["docker", "exec", "-i", "w1"]]
    assert ["ip", "route", "replace", "198.19.128.0/24", "via", "198.19.32.2"] in on_w1
    assert not [a for a in on_w1 if a[:3] == ["ip", "route", "replace"] and a[3] == "198.19.129.0/24"]
    written = [json.loads(i) for a, i in sent if i is not None and a[3] == "w1"]
    assert written == [kindnet.conflist("198.19.129.0/24")]
    staged, final = f"{kindnet.CONFLIST_DIR}/.{kindnet.CONFLIST_NAME}.tmp", f"{kindnet.CONFLIST_DIR}/{kindnet.CONFLIST_NAME}"
    assert ["docker", "exec", "w1", "mv", staged, final] in [a for a, _ in sent]  # renamed into place whole
    assert sum(1 for a, _ in sent if "-A" in a) == 2  # the masquerade rule, once per node



def test_preloaded_images_are_also_named_by_digest_as_a_pull_would_record_them():
    assert kindnode._repository("registry.k8s.io/pause:3.10.1") == "registry.k8s.io/pause"
    assert kindnode._repository("localhost:5001/models/qwen") == "localhost:5001/models/qwen"
    assert kindnode._repository("localhost:5001/models/qwen:v1") == "localhost:5001/models/qwen"
    image = kindnode.NodeImage("t", "k", False, {}, preloaded=(("registry.k8s.io/pause:3.10.1", "sha256:ab"),))
    assert image.reference("registry.k8s.io/pause:3.10.1") == "registry.k8s.io/pause@sha256:ab"


def test_an_empty_directory_keeps_its_mode_even_with_files_below_it():
    import io

    layer = oci.Layer(files=(("/tmp/x", b"", 0o644), ("/etc/passwd", b"", 0o644)), dirs=(("/tmp", 0o1777), ("/var/tmp", 0o1777)))
    out = io.BytesIO()
    oci._layer_tar(layer, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        modes = {m.name: (m.type, m.mode) for m in tar.getmembers()}
    assert modes["tmp"] == (tarfile.DIRTYPE, 0o1777) and modes["var/tmp"] == (tarfile.DIRTYPE, 0o1777)
    assert modes["var"] == (tarfile.DIRTYPE, 0o755) and modes["etc"] == (tarfile.DIRTYPE, 0o755)
    assert list(modes) == sorted(modes, key=lambda n: n.split("/")), "parents come before what they hold"


def test_an_image_built_here_gives_every_user_a_temporary_directory(tmp_path, monkeypatch):
    """KServe runs a modelcar pod's vLLM as uid 1010: Python needs a /tmp it may write."""
    import io

    from serving_conformance.toolchain import images

    monkeypatch.setenv("SERVING_CONFORMANCE_CACHE", str(tmp_path / "cache"))
    binary = tmp_path / "tool"
    binary.write_bytes(b"#!/bin/sh\n")
    built = images.binary_image("tool", binary, "1")
    modes = {}
    with tarfile.open(built.path) as layout:
        for member in layout.getmembers():
            if member.isfile() and member.name.startswith("blobs/"):
                blob = layout.extractfile(member).read()
                try:
                    with tarfile.open(fileobj=io.BytesIO(blob)) as layer:
                        modes.update({m.name: m.mode for m in layer.getmembers()})
                except tarfile.ReadError:
                    continue  # the config and manifest
    assert modes["tmp"] == 0o1777 and modes["var/tmp"] == 0o1777 and modes["tool"] == 0o755


def test_files_from_this_machine_are_readable_by_every_user_in_the_image(tmp_path):
    import io

    private = tmp_path / "model"
    private.mkdir(mode=0o700)
    (private / "weights").write_bytes(b"w")
    (private / "weights").chmod(0o600)
    (private / "run").write_bytes(b"#!/bin/sh\n")
    (private / "run").chmod(0o700)
    out = io.BytesIO()
    oci._layer_tar(oci.Layer(trees=((private, "/models"),), for_every_user=True), out)
    kept = io.BytesIO()
    oci._layer_tar(oci.Layer(trees=((private, "/models"),)), kept)
    with tarfile.open(fileobj=io.BytesIO(kept.getvalue())) as tar:
        assert {m.name: m.mode for m in tar.getmembers()}["models/weights"] == 0o600, "a rootfs keeps its modes"
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        modes = {m.name: m.mode for m in tar.getmembers()}
    assert modes == {"models": 0o755, "models/weights": 0o644, "models/run": 0o755}


def test_python_sources_keep_their_mtime_so_the_bytecode_cache_in_the_image_is_used(tmp_path):
    """A pyc holds its source's mtime and is used only when they match: with every mtime fixed,
    each process of the vLLM image compiled all it imported again (seconds per start)."""
    import compileall
    import io
    import os
    import subprocess
    import sys

    tree = tmp_path / "site"
    tree.mkdir()
    (tree / "shipped.py").write_text("VALUE = 1\n")
    os.utime(tree / "shipped.py", (1_700_000_000, 1_700_000_000))
    (tree / "data.txt").write_text("x")
    assert compileall.compile_dir(tree, quiet=1)
    out = io.BytesIO()
    oci._layer_tar(oci.Layer(trees=((tree, "/site"),)), out)
    root = tmp_path / "image"
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        times = {m.name: m.mtime for m in tar.getmembers()}
        tar.extractall(root, filter="tar")
    assert times["site/shipped.py"] == 1_700_000_000 and times["site/data.txt"] == oci.EPOCH
    verbose = subprocess.run([sys.executable, "-v", "-c", "import shipped"], capture_output=True, text=True,
                             env={"PYTHONPATH": str(root / "site"), "PYTHONDONTWRITEBYTECODE": "1"}, check=True).stderr
    assert f"# code object from '{root}/site/__pycache__/shipped." in verbose, verbose[-2000:]
    assert "bytecode is stale" not in verbose, verbose[-2000:]


@pytest.mark.parametrize(("args", "model"), [
    (["--model=/mnt/models", "--port=8080"], "/mnt/models"),  # a modelcar's path, linked a moment later
    (["--model", "Qwen/Qwen2.5-0.5B-Instruct"], "TINY"),  # a hub name: not fetchable here
    (["serve", "Qwen/Qwen2.5-0.5B-Instruct"], "TINY"),
    (["--port=8000"], "TINY"),
])
def test_the_vllm_images_entrypoint_keeps_paths_and_replaces_hub_names(tmp_path, args, model):
    import subprocess
    import sys

    from serving_conformance.toolchain import images

    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    # Runs the entrypoint with this interpreter; the vLLM server it execs prints its arguments.
    python.write_text(f'#!/bin/sh\nif [ "$1" = "-m" ]; then shift 2; echo "$@"; else exec {sys.executable} "$@"; fi\n')
    python.chmod(0o755)
    entrypoint = tmp_path / "entrypoint"
    entrypoint.write_bytes(images._entrypoint(venv))
    entrypoint.chmod(0o755)
    out = subprocess.run([str(entrypoint), *args], capture_output=True, text=True, check=True).stdout.split()
    expected = images.TINY_MODEL_PATH if model == "TINY" else model
    assert f"--model={expected}" in out, out

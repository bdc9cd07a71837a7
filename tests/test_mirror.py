"""The local mirror (toolchain/mirror.py): distribution's registry built here, images pushed under
their published names with the digests they were built with, and the nodes' containerd pointed at
it. Real registry, real pushes; each failure has its own message."""

from __future__ import annotations

import httpx
import pytest

from serving_conformance.providers.kind import cluster_config
from serving_conformance.providers.kind_mirror import mirror_host, with_mirror
from serving_conformance.providers.kind_platform import MIRROR_CONFIG_PATH, PlatformImages
from serving_conformance.toolchain import mirror
from serving_conformance.toolchain.oci import Built, ImageConfig, Layer, write_layout


@pytest.mark.parametrize("name, expected", [
    ("docker.io/kserve/kserve-controller:v0.19.0", ("docker.io", "kserve/kserve-controller", "v0.19.0")),
    ("traefik:v3.6.15", ("docker.io", "library/traefik", "v3.6.15")),
    ("kserve/x", ("docker.io", "kserve/x", "latest")),
    ("public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v0.23.0",
     ("public.ecr.aws", "q9t5s3a7/vllm-cpu-release-repo", "v0.23.0")),
    ("localhost/serving-conformance/modelcar-a:1", ("localhost", "serving-conformance/modelcar-a", "1")),
    ("registry.local:5000/team/app", ("registry.local:5000", "team/app", "latest")),
])
def test_a_published_name_splits_as_docker_reads_it(name, expected):
    assert mirror.split_reference(name) == expected


@pytest.fixture
def image(tmp_path) -> Built:
    return write_layout(tmp_path / "image.tar", "localhost/serving-conformance/probe:1",
                        [Layer(files=(("hello.txt", b"hello\n", 0o644),))], ImageConfig(entrypoint=("/hello",)))


@pytest.fixture
def served(tmp_path):
    run = tmp_path / "run"
    started = mirror.start(run, storage=tmp_path / "storage")
    yield started
    assert mirror.stop(run)


def test_an_image_pushed_under_a_published_name_keeps_its_digest(served, image):
    name = "docker.io/kserve/kserve-controller:v0.19.0"
    assert mirror.digest_of(served, name) is None
    assert mirror.push(served, image.path, name) == image.digest
    assert mirror.digest_of(served, name) == image.digest
    # Again: every blob is there already, and the tag still names the same digest.
    assert mirror.push(served, image.path, name) == image.digest
    manifest = httpx.get(f"{served.url}/v2/kserve/kserve-controller/manifests/{image.digest}", timeout=10,
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert manifest.status_code == 200


def test_a_blob_the_registry_refuses_is_named(served, image, monkeypatch):
    monkeypatch.setattr(mirror, "_stream", lambda tar, member: iter([b"not the blob"]))
    with pytest.raises(mirror.MirrorError, match=r"refused blob sha256:[0-9a-f]{64} of docker.io/x/y:1"):
        mirror.push(served, image.path, "docker.io/x/y:1")


def test_a_registry_that_cannot_listen_says_where(tmp_path):
    with pytest.raises(mirror.MirrorError, match="cannot listen on 192.0.2.1"):
        mirror.start(tmp_path / "run", host="192.0.2.1", storage=tmp_path / "storage")


def test_the_nodes_ask_the_mirror_first_for_every_host_the_images_are_named_under(tmp_path):
    def built(name: str) -> Built:
        return Built(tmp_path / "x.tar", name, "sha256:" + "0" * 64)

    images = PlatformImages(built("localhost/serving-conformance/kserve-manager:v0.19.0"),
                            built("localhost/serving-conformance/traefik:3.6.15"),
                            built("localhost/serving-conformance/vllm-cpu:0.23.0"),
                            built("localhost/serving-conformance/modelcar-tiny:1"), "0.23.0", "3.6.15")
    published = images.published("198.19.32.1:5000")
    assert [b.name for b in published.images()] == [
        "docker.io/kserve/kserve-controller:v0.19.0", "docker.io/library/traefik:v3.6.15",
        "public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v0.23.0", "localhost/serving-conformance/modelcar-tiny:1"]
    assert [b.digest for b in published.images()] == [b.digest for b in images.images()]
    hosts = published.hosts_files()
    assert sorted(hosts) == ["docker.io", "localhost", "public.ecr.aws"]
    assert hosts["docker.io"].startswith('server = "https://registry-1.docker.io"')
    assert '[host."http://198.19.32.1:5000"]' in hosts["public.ecr.aws"]
    (stand_in,) = [s for s in published.substitutions() if s.here.startswith("images from a local mirror")]
    assert stand_in.subject == "image" and "198.19.32.1:5000" in stand_in.here
    assert not [s for s in images.substitutions() if s.here.startswith("images from a local mirror")]


def test_every_node_reads_the_mirrors_hosts(tmp_path):
    config = with_mirror(cluster_config(2), tmp_path / "certs.d")
    assert 'config_path = "/etc/containerd/certs.d"' in config["containerdConfigPatches"][0]
    assert len(config["nodes"]) == 3 and all(
        {"hostPath": str(tmp_path / "certs.d"), "containerPath": MIRROR_CONFIG_PATH, "readOnly": True}
        in n["extraMounts"] for n in config["nodes"])
    assert mirror_host() == "198.19.32.1"

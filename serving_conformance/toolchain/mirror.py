"""A local OCI registry that serves the images built here under the names their releases publish:
the published image path, exercised on a machine no registry answers.

distribution's registry (built from its module, `toolchain.go.registry_component`) runs as a
recorded process; its storage is cached (keyed by distribution's version), so an image pushed once
is not pushed again (a blob the registry has is skipped by its digest). Pushing speaks the OCI
distribution API directly: blobs by monolithic upload, then the manifest under its tag.
"""

from __future__ import annotations

import json
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from serving_conformance.base import proc, versions
from serving_conformance.base.cache import cache_dir
from serving_conformance.base.net import free_port
from serving_conformance.base.progress import progress
from serving_conformance.toolchain import go
from serving_conformance.toolchain.oci import CHUNK

Log = Callable[[str], None]
PROCESS = "registry"
# The registry answers /v2/ within a second or two; a push of the vLLM image (gigabytes, from the
# same disk) within minutes.
START_TIMEOUT_S = 30.0
PUSH_TIMEOUT_S = 900.0


class MirrorError(RuntimeError):
    """The local registry did not start, or refused a push; the message says which and why."""


@dataclass(frozen=True)
class Mirror:
    address: str  # host:port, plain HTTP

    @property
    def url(self) -> str:
        return f"http://{self.address}"


def storage_dir() -> Path:
    return cache_dir("mirror") / f"distribution-{versions.DISTRIBUTION}"


def _config(host: str, port: int, storage: Path) -> dict[str, object]:
    return {"version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
            "http": {"addr": f"{host}:{port}"}}


def start(run_dir: Path, host: str = "127.0.0.1", log: Log = progress, storage: Path | None = None,
          name: str = PROCESS) -> Mirror:
    """The registry listening on `host` (one of this machine's addresses); its storage in the
    cache unless another directory is given. Several may serve one storage (each `name` is a
    recorded process of the run): the container engine pulls over plain HTTP from loopback only."""
    binary = go.ensure_components(("registry",), log=log)["registry"].directory / "registry"
    storage = storage or storage_dir()
    storage.mkdir(parents=True, exist_ok=True)
    try:
        port = free_port(host)
    except OSError as exc:
        raise MirrorError(f"the local registry cannot listen on {host}: {exc}") from exc
    config = run_dir / f"{name}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(_config(host, port, storage)))
    # It serves this run alone: a run killed outright leaves no registry running.
    process = proc.spawn(name, [str(binary), "serve", str(config)], run_dir, ends_with_starter=True)
    mirror = Mirror(f"{host}:{port}")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise MirrorError(f"the local registry exited ({process.returncode}):\n"
                              f"{proc.log_tail(run_dir, name)}")
        try:
            if httpx.get(f"{mirror.url}/v2/", timeout=2).status_code == 200:
                log(f"local registry (distribution {versions.DISTRIBUTION}) at {mirror.address} ({name})")
                return mirror
        except httpx.TransportError:
            pass
        time.sleep(proc.POLL_S * 4)
    proc.stop(run_dir, name)
    raise MirrorError(f"the local registry did not answer on {mirror.address} within {START_TIMEOUT_S:.0f} s:\n"
                      f"{proc.log_tail(run_dir, name)}")


def stop(run_dir: Path, name: str = PROCESS) -> bool:
    return proc.stop(run_dir, name)


def split_reference(name: str) -> tuple[str, str, str]:
    """(registry host, repository, tag) of a published image name: `docker.io/kserve/x:v1` ->
    ("docker.io", "kserve/x", "v1"); a name without a host is Docker Hub's, as docker reads it."""
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        first, rest = "docker.io", name
    if first == "docker.io" and "/" not in rest:
        rest = f"library/{rest}"
    repository, _, tag = rest.rpartition(":") if ":" in rest.rsplit("/", 1)[-1] else (rest, "", "latest")
    return first, repository, tag


def _members(tar: tarfile.TarFile, digest: str) -> tarfile.TarInfo:
    return tar.getmember(f"blobs/sha256/{digest.removeprefix('sha256:')}")


def _stream(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[bytes]:
    handle = tar.extractfile(member)
    assert handle is not None
    while chunk := handle.read(CHUNK):
        yield chunk


def push(mirror: Mirror, layout: Path, name: str) -> str:
    """Push the one image of an OCI layout tar as `name` (its registry host dropped: the mirror
    serves every host's repositories); the manifest digest the mirror holds it by."""
    _, repository, tag = split_reference(name)
    base = f"{mirror.url}/v2/{repository}"
    with tarfile.open(layout) as tar, httpx.Client(timeout=PUSH_TIMEOUT_S) as client:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        (entry,) = index["manifests"]
        manifest_bytes = tar.extractfile(_members(tar, entry["digest"])).read()  # type: ignore[union-attr]
        manifest = json.loads(manifest_bytes)
        for blob in (manifest["config"], *manifest["layers"]):
            if client.head(f"{base}/blobs/{blob['digest']}").status_code == 200:
                continue
            started = client.post(f"{base}/blobs/uploads/")
            if started.status_code != 202:
                raise MirrorError(f"the local registry refused an upload to {repository}: {started.status_code}")
            location = httpx.URL(started.headers["Location"])
            target = location if location.is_absolute_url else httpx.URL(mirror.url).join(location)
            done = client.put(target.copy_merge_params({"digest": blob["digest"]}),
                              content=_stream(tar, _members(tar, blob["digest"])),
                              headers={"Content-Type": "application/octet-stream"})
            if done.status_code != 201:
                raise MirrorError(f"the local registry refused blob {blob['digest']} of {name}: "
                                  f"{done.status_code} {done.text[:300]}")
        put = client.put(f"{base}/manifests/{tag}", content=manifest_bytes,
                         headers={"Content-Type": entry.get("mediaType") or manifest["mediaType"]})
        if put.status_code != 201:
            raise MirrorError(f"the local registry refused the manifest of {name}: {put.status_code} {put.text[:300]}")
        return put.headers.get("Docker-Content-Digest") or entry["digest"]


def digest_of(mirror: Mirror, name: str) -> str | None:
    """The manifest digest the mirror serves `name` by, or None when it has no such image."""
    _, repository, tag = split_reference(name)
    response = httpx.head(f"{mirror.url}/v2/{repository}/manifests/{tag}", timeout=30,
                          headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    return response.headers.get("Docker-Content-Digest") if response.status_code == 200 else None

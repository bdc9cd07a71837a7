"""OCI images written directly, without a registry or an image builder.

An image here is a list of layers (each a directory tree, or files to place) and a config
(entrypoint, env, user, working directory). `write_layout` writes an OCI image layout tar (what
`ctr images import` and `docker load` read) in which every tar entry has a fixed owner and mtime,
so the same inputs always give the same digests: an image can be named by digest in the manifests
under test, and its digest is known before it is imported anywhere. The one mtime kept is a Python
source's: its bytecode cache (`__pycache__`) holds the source's mtime and is used only when they
match, so with a fixed mtime every process of the image would compile what it imports again.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_PLAIN = "application/vnd.oci.image.layer.v1.tar"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
EPOCH = 0  # every entry's mtime: reproducible layers
CHUNK = 1 << 20


@dataclass(frozen=True)
class Layer:
    """Files of one layer: `trees` are (directory or file on disk, path in the image); `files` are
    (path in the image, bytes, mode); `links` are (path in the image, target); `dirs` are (path in
    the image, mode) of directories made empty (/tmp, writable by any user: 0o1777)."""

    trees: tuple[tuple[Path, str], ...] = ()
    files: tuple[tuple[str, bytes, int], ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    dirs: tuple[tuple[str, int], ...] = ()
    # Trees readable by every user whatever their mode here (see _for_every_user); a rootfs keeps its modes.
    for_every_user: bool = False


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    user: str = ""
    workdir: str = "/"
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Built:
    path: Path  # the OCI layout tar
    name: str  # the image name it carries (org.opencontainers.image.ref.name)
    digest: str  # sha256:... of the manifest: the image's digest

    @property
    def reference(self) -> str:
        return f"{self.name.rsplit(':', 1)[0] if _has_tag(self.name) else self.name}@{self.digest}"


def _has_tag(name: str) -> bool:
    return ":" in name.rsplit("/", 1)[-1]


def _for_every_user(mode: int) -> int:
    """Readable (and, where the owner may run or list it, runnable and listable) by every user,
    whatever the mode here (a cache made with mkdtemp is 0700): the platform's pods may run as any
    uid, as KServe runs a modelcar pod's as 1010."""
    mode &= 0o7777
    return mode | 0o444 | (0o111 if mode & 0o100 else 0)


def _info(name: str, kind: bytes, size: int = 0, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name.lstrip("/"))
    info.type, info.size, info.mode = kind, size, mode
    info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "", ""
    return info


def _parents(path: str, done: set[str]) -> Iterable[str]:
    parts = path.strip("/").split("/")[:-1]
    for index in range(1, len(parts) + 1):
        parent = "/".join(parts[:index])
        if parent not in done:
            done.add(parent)
            yield parent


def _layer_tar(layer: Layer, out: io.BufferedIOBase) -> None:
    """The layer as a tar, entries sorted, owners and times fixed."""
    entries: list[tuple[str, Path | bytes | str | int, int]] = []
    for root, target in layer.trees:
        if root.is_symlink() or not root.is_dir():  # a single file (or link) placed at `target`
            entries.append((target, root, 0))
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            relative = os.path.relpath(dirpath, root)
            base = target.rstrip("/") if relative == "." else f"{target.rstrip('/')}/{relative}"
            entries.append((base, Path(dirpath), -1))
            for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
                entries.append((f"{base}/{name}", Path(dirpath) / name, 0))
    for path, data, mode in layer.files:
        entries.append((path, data, mode))
    for path, target in layer.links:
        entries.append((path, target, -2))
    for path, mode in layer.dirs:
        entries.append((path, mode, -3))
    done: set[str] = set()
    modes = _for_every_user if layer.for_every_user else (lambda mode: mode & 0o7777)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path, source, mode in sorted(entries, key=lambda e: e[0]):
            for parent in _parents(path, done):
                tar.addfile(_info(parent, tarfile.DIRTYPE, mode=0o755))
            name = path.strip("/")
            if not name or name in done:
                continue
            done.add(name)
            if mode == -3:  # an empty directory given with its mode
                assert isinstance(source, int)
                tar.addfile(_info(name, tarfile.DIRTYPE, mode=source))
            elif mode == -2:  # a symlink given as a target
                info = _info(name, tarfile.SYMTYPE, mode=0o777)
                info.linkname = str(source)
                tar.addfile(info)
            elif isinstance(source, bytes):
                tar.addfile(_info(name, tarfile.REGTYPE, len(source), mode or 0o644), io.BytesIO(source))
            elif isinstance(source, Path) and source.is_symlink():
                info = _info(name, tarfile.SYMTYPE, mode=0o777)
                info.linkname = os.readlink(source)
                tar.addfile(info)
            elif isinstance(source, Path) and source.is_dir():
                tar.addfile(_info(name, tarfile.DIRTYPE, mode=modes(source.stat().st_mode)))
            elif isinstance(source, Path):
                stat = source.stat()
                info = _info(name, tarfile.REGTYPE, stat.st_size, modes(stat.st_mode))
                if name.endswith(".py"):
                    info.mtime = int(stat.st_mtime)
                with source.open("rb") as handle:
                    tar.addfile(info, handle)


class _Digesting(io.RawIOBase):
    """A sink that hashes and counts what is written, and passes it on."""

    def __init__(self, sink: io.BufferedIOBase) -> None:
        self.sink, self.hash, self.size = sink, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.hash.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)


def _blob(data: bytes) -> tuple[str, int]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), len(data)


def write_layout(
    destination: Path, name: str, layers: Sequence[Layer], config: ImageConfig, compress: bool = True
) -> Built:
    """Write an OCI image layout tar for image `name`; returns its manifest digest. Big layers are
    better left uncompressed (`compress=False`): gzip costs minutes of CPU for gigabytes."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    blobs = destination.parent / f".{destination.name}.blobs"
    blobs.mkdir(exist_ok=True)
    layer_descriptors, diff_ids = [], []
    for layer in layers:
        staging = blobs / "layer.tmp"
        with staging.open("wb") as raw:
            compressed = _Digesting(raw)  # type: ignore[arg-type]
            if compress:
                with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=EPOCH) as zipped:  # type: ignore[arg-type]
                    plain = _Digesting(zipped)  # type: ignore[arg-type]
                    _layer_tar(layer, plain)  # type: ignore[arg-type]
            else:
                plain = compressed
                _layer_tar(layer, plain)  # type: ignore[arg-type]
        digest = "sha256:" + compressed.hash.hexdigest()
        staging.rename(blobs / digest.split(":")[1])
        media = MEDIA_LAYER if compress else MEDIA_LAYER_PLAIN
        layer_descriptors.append({"mediaType": media, "digest": digest, "size": compressed.size})
        diff_ids.append("sha256:" + plain.hash.hexdigest())
    image_config = {
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": list(config.entrypoint) or None, "Cmd": list(config.cmd) or None,
                   "Env": list(config.env), "User": config.user, "WorkingDir": config.workdir,
                   "Labels": dict(config.labels) or None},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_bytes = json.dumps(image_config, sort_keys=True, separators=(",", ":")).encode()
    config_digest, config_size = _blob(config_bytes)
    manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config_size},
                "layers": layer_descriptors}
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    manifest_digest, manifest_size = _blob(manifest_bytes)
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [{
        "mediaType": MEDIA_MANIFEST, "digest": manifest_digest, "size": manifest_size,
        "annotations": {"org.opencontainers.image.ref.name": name, "io.containerd.image.name": name},
    }]}
    staging = destination.with_name(destination.name + ".tmp")
    with tarfile.open(staging, "w", format=tarfile.PAX_FORMAT) as tar:
        def add(path: str, data: bytes) -> None:
            tar.addfile(_info(path, tarfile.REGTYPE, len(data)), io.BytesIO(data))

        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps(index, sort_keys=True).encode())
        add(f"blobs/sha256/{config_digest.split(':')[1]}", config_bytes)
        add(f"blobs/sha256/{manifest_digest.split(':')[1]}", manifest_bytes)
        for descriptor in layer_descriptors:
            blob = blobs / descriptor["digest"].split(":")[1]
            with blob.open("rb") as handle:
                tar.addfile(_info(f"blobs/sha256/{blob.name}", tarfile.REGTYPE, descriptor["size"]), handle)
            blob.unlink()
    staging.replace(destination)
    blobs.rmdir()
    return Built(destination, name, manifest_digest)

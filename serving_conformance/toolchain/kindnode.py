"""kind's node image, built here from published sources: nothing is pulled from an image registry.

kind's own node images come from a registry no CI machine here reaches, and its node-image builder
pulls containerd, runc, CNI plugins, kindnetd and the control plane's images. Instead:

- the binaries are Go builds from their published modules (`toolchain.go`: containerd, runc, crictl,
  the CNI plugins, CoreDNS; kubelet, kubeadm, kubectl, kube-proxy and the control plane from the
  testbed's own Kubernetes build; etcd from the testbed's), and `pause` is compiled with gcc from
  Kubernetes' own source (the k8s.io/kubernetes module zip);
- the node's operating system is a Debian rootfs from debootstrap with the packages kind's base
  image installs (cached as a tar);
- the control plane's and the addons' images are OCI image layouts written by `toolchain.oci`,
  named as kubeadm of the pinned Kubernetes expects them, with a busybox image for checks;
- kind's base-image files (entrypoint, systemd units, containerd config) are read from the kind
  module zip at build time, never committed;
- every image is preloaded into the node's containerd store, the way kind's builder does it (the
  same containerd, run on the host against the rootfs), together with any extra image layout tars
  the caller gives (the platform's images);
- the rootfs is `docker import`ed, then given kind's base-image metadata (entrypoint, stop signal).

Each piece is cached under the cache directory, keyed by its versions and contents, and published
in one rename; the node image's tag carries a key over everything that went in, so an unchanged
recipe is never rebuilt and a changed one never reuses a stale image.

    python -m serving_conformance.toolchain.kindnode [--extra-image LAYOUT.tar ...]

One module (about 700 lines): the node image is one recipe whose parts (rootfs, images, kind's files,
the preload, the import) share its cache keys and its lock; split, the key over everything that
went in would have to be assembled across modules.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from serving_conformance.base import proc, versions
from serving_conformance.base.cache import cache_dir
from serving_conformance.base.progress import progress
from serving_conformance.base.timeouts import Timeouts, from_environment_and
from serving_conformance.toolchain import debian, oci
from serving_conformance.toolchain.go import (
    CNI_PLUGINS,
    KIND_MODULE,
    KUBERNETES_MODULE,
    BuildError,
    ComponentResult,
    component_dir,
    ensure_components,
    is_built,
    kind_component,
    module_dir,
)

Log = Callable[[str], None]
T = TypeVar("T")

# Bump one when its part below changes in a way the inputs do not show: the rootfs (debootstrap and
# its clean-ups), the images (their layouts), the node image (its assembly and preload).
ROOTFS_RECIPE = 1
IMAGES_RECIPE = 1
NODE_RECIPE = 2
NODE_IMAGE_REPOSITORY = "serving-conformance.local/kind-node"
BUSYBOX_REPOSITORY = "serving-conformance.local/busybox"
IMAGE_KEY_LABEL = "serving-conformance.dev/node-image-key"
# Node images kept in docker (the current one included): with and without the platform's images.
KEEP_NODE_IMAGES = 3
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# What kind's base image installs (images/base/Dockerfile), less what only storage e2e tests and
# rootless nodes use (nfs-common, open-iscsi, fuse-overlayfs), plus systemd-sysv and dbus.
ROOTFS_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "conntrack", "iptables", "nftables", "iproute2", "ethtool", "util-linux",
    "mount", "kmod", "libseccomp2", "pigz", "e2fsprogs", "bash", "ca-certificates", "curl", "jq", "procps", "socat",
    "ebtables", "less",
)
# Debian packages the build runs on the host: debootstrap, a C toolchain for pause and runc (with
# libseccomp), Debian's static busybox for the check image.
BUILD_PACKAGES = ("debootstrap", "gcc", "libc6-dev", "libseccomp-dev", "pkg-config", "busybox-static")
BUSYBOX = Path("/bin/busybox")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# The node image's binaries, by component.
NODE_COMPONENTS = ("containerd", "runc", "crictl", "cni-plugins", "kubernetes", "etcd", "coredns")
UNITS_ENABLED = ("kubelet.service", "containerd.service", "undo-mount-hacks.service")
UNITS_MASKED = ("systemd-binfmt.service",)
UNITS_SKIPPED = ("containerd-fuse-overlayfs.service",)  # rootless only; its binary is not built
PAUSE_CFLAGS = ("-Os", "-Wall", "-Werror", "-static")
STATIC_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PRELOAD_SOCKET_WAIT_S = 30.0


class NodeImageError(RuntimeError):
    """The node image cannot be built; the message names the step and why."""


def kind_root() -> Path:
    return cache_dir("kind")


def _sha(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _file_sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_key(directory: Path) -> str:
    key = proc.stamp(directory).get("key")
    if not key:
        raise NodeImageError(f"{directory} has no build stamp")
    return str(key)


def _timed(what: str, timings: dict[str, float], action: Callable[[], T]) -> T:
    started = time.monotonic()
    result = action()
    timings[what] = time.monotonic() - started
    return result


def _inside(root: Path, relative: str) -> Path:
    """A path under `root` that no symlink in the rootfs leads out of (writing through an absolute
    link would land on the host)."""
    path = root / relative.lstrip("/")
    resolved = path.parent.resolve()
    if resolved != root.resolve() and root.resolve() not in resolved.parents:
        raise NodeImageError(f"{relative} in the node rootfs leads outside it ({resolved})")
    return path


def _docker_timeout() -> float:
    return from_environment_and(()).docker_command


# --- kind itself ------------------------------------------------------------------------------


def ensure_kind(log: Log = progress) -> Path:
    """The kind binary of the pinned version, built from its module on first use."""
    return ensure_components(("kind",), log=log)["kind"].directory / "kind"


def cached_kind() -> Path | None:
    component = kind_component()
    return component_dir(component) / "kind" if is_built(component) else None


def ensure_build_packages(log: Log, timeouts: Timeouts) -> list[str]:
    try:
        return debian.ensure_packages(BUILD_PACKAGES, "building the kind node image", log, timeouts.package_install)
    except debian.PackageError as exc:
        raise NodeImageError(str(exc)) from exc


# --- pause --------------------------------------------------------------------------------------


def ensure_pause(log: Log = progress) -> Path:
    """Kubernetes' pause, compiled from build/pause/linux/pause.c of the pinned k8s.io/kubernetes."""
    source = module_dir(KUBERNETES_MODULE, f"v{versions.KUBERNETES}") / "build" / "pause" / "linux" / "pause.c"
    gcc = shutil.which("gcc")
    if gcc is None:
        raise NodeImageError("gcc is not installed: pause is compiled from Kubernetes' C source (Debian: gcc)")
    gcc_version = proc.run([gcc, "--version"], step="gcc --version").splitlines()[0]
    flags = [*PAUSE_CFLAGS, f"-DVERSION=v{versions.PAUSE}"]
    key = _sha("pause", versions.PAUSE, _file_sha(source), flags, gcc_version)
    final = cache_dir("bin") / f"pause-{versions.PAUSE}"
    with proc.file_lock(cache_dir("bin") / f".pause-{versions.PAUSE}.lock"):
        if proc.is_done(final, key, ("pause",)):
            return final / "pause"
        log(f"compiling pause {versions.PAUSE} from {source.name} (gcc)")
        staged = proc.staging(final)
        try:
            proc.run([gcc, *flags, "-o", str(staged / "pause"), str(source)], step="gcc pause.c", error=NodeImageError)
            proc.run(["strip", str(staged / "pause")], step="strip pause", error=NodeImageError)
            proc.publish(staged, final, key, {"component": "pause", "version": versions.PAUSE, "gcc": gcc_version})
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    return final / "pause"


# --- the Debian rootfs -----------------------------------------------------------------------------


def rootfs_key() -> str:
    return _sha("rootfs", ROOTFS_RECIPE, versions.KIND_NODE_DEBIAN, DEBIAN_MIRROR, ROOTFS_PACKAGES)


def ensure_rootfs(log: Log = progress, timeouts: Timeouts | None = None) -> Path:
    """A Debian rootfs (debootstrap minbase + kind's packages, cleaned up as kind's Dockerfile
    does), as a tar with numeric owners."""
    timeouts = timeouts or from_environment_and(())
    key = rootfs_key()
    final = kind_root() / f"rootfs-{versions.KIND_NODE_DEBIAN}-{key[:12]}"
    with proc.file_lock(kind_root() / f".{final.name}.lock"):
        if proc.is_done(final, key) and (final / "rootfs.tar").is_file():
            return final / "rootfs.tar"
        if os.geteuid() != 0:
            raise NodeImageError("debootstrap needs root to build the node's Debian rootfs")
        log(f"debootstrap {versions.KIND_NODE_DEBIAN} (minbase + {len(ROOTFS_PACKAGES)} packages; a few minutes)")
        staged = proc.staging(final)
        try:
            root = staged / "root"
            proc.run(proc.niced(["debootstrap", "--variant=minbase", f"--include={','.join(ROOTFS_PACKAGES)}",
                                 versions.KIND_NODE_DEBIAN, str(root), DEBIAN_MIRROR]),
                     step="debootstrap", timeout=timeouts.package_install, error=NodeImageError)
            _clean_rootfs(root)
            proc.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(staged / "rootfs.tar"), "."],
                     step="tar the rootfs", error=NodeImageError)
            shutil.rmtree(root)
            proc.publish(staged, final, key, {"suite": versions.KIND_NODE_DEBIAN, "packages": list(ROOTFS_PACKAGES)})
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    return final / "rootfs.tar"


def _clean_rootfs(root: Path) -> None:
    """kind's base Dockerfile's clean-ups: no default units wanted, no tmpfiles at boot, no kmsg."""
    for pattern in ("lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service",
                    "lib/systemd/system/multi-user.target.wants/*", "etc/systemd/system/*.wants/*",
                    "lib/systemd/system/local-fs.target.wants/*", "lib/systemd/system/sockets.target.wants/*udev*",
                    "lib/systemd/system/sockets.target.wants/*initctl*", "lib/systemd/system/basic.target.wants/*",
                    "var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "usr/share/doc/*", "usr/share/man/*",
                    "usr/share/locale/*"):
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    with (root / "etc/systemd/journald.conf").open("a") as handle:
        handle.write("ReadKMsg=no\n")


# --- the control plane's and addons' images -------------------------------------------------------


@dataclass(frozen=True)
class ImageSpec:
    name: str
    # (source file, path in the image, mode) placed over the base layer
    files: tuple[tuple[Path, str, int], ...]
    entrypoint: tuple[str, ...]
    user: str = ""
    base: bool = True  # CA bundle, passwd/group, /tmp
    rootfs: bool = False  # the whole Debian rootfs (kube-proxy shells out to iptables, nft, conntrack)
    dirs: tuple[str, ...] = ()


def image_specs(kubernetes: Path, etcd: Path, coredns: Path, pause: Path) -> tuple[ImageSpec, ...]:
    k8s = f"v{versions.KUBERNETES}"
    specs = [
        ImageSpec(f"registry.k8s.io/{name}:{k8s}", ((kubernetes / name, f"/usr/local/bin/{name}", 0o755),),
                  (f"/usr/local/bin/{name}",))
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
    ]
    specs += [
        ImageSpec(f"registry.k8s.io/kube-proxy:{k8s}", ((kubernetes / "kube-proxy", "/usr/local/bin/kube-proxy", 0o755),),
                  ("/usr/local/bin/kube-proxy",), base=False, rootfs=True),
        ImageSpec(f"registry.k8s.io/etcd:{versions.ETCD_IMAGE_TAG}", ((etcd / "etcd", "/usr/local/bin/etcd", 0o755),),
                  ("/usr/local/bin/etcd",), dirs=("/var/lib/etcd",)),
        ImageSpec(f"registry.k8s.io/coredns/coredns:v{versions.COREDNS}", ((coredns / "coredns", "/coredns", 0o755),),
                  ("/coredns",)),
        ImageSpec(f"registry.k8s.io/pause:{versions.PAUSE}", ((pause, "/pause", 0o755),), ("/pause",),
                  user="65535:65535", base=False),
    ]
    return tuple(specs)


def busybox_version() -> str:
    out = proc.run([str(BUSYBOX), "--help"], step="busybox --help")
    match = re.search(r"BusyBox v(\d+\.\d+\.\d+)", out)
    if not match:
        raise NodeImageError(f"cannot read busybox's version from {out.splitlines()[:1]}")
    return match.group(1)


def busybox_image_name() -> str:
    return f"{BUSYBOX_REPOSITORY}:{busybox_version()}"


def _base_tree(directory: Path) -> Path:
    """The files every small image shares (one layer, the same digest in every image)."""
    (directory / "tmp").mkdir(parents=True)
    (directory / "tmp").chmod(0o1777)
    certs = directory / "etc" / "ssl" / "certs"
    certs.mkdir(parents=True)
    if HOST_CA_BUNDLE.is_file():
        shutil.copyfile(HOST_CA_BUNDLE, certs / "ca-certificates.crt")
    (directory / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
        "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
    (directory / "etc" / "group").write_text("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")
    (directory / "etc" / "nsswitch.conf").write_text("hosts: files dns\n")
    for path in directory.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
        elif path.name != "tmp":
            path.chmod(0o755)
    return directory


def _files_tree(directory: Path, spec: ImageSpec) -> Path:
    for source, target, mode in spec.files:
        destination = directory / target.lstrip("/")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        destination.chmod(mode)
    for extra in spec.dirs:
        (directory / extra.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for path in [directory, *directory.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    return directory


def _busybox_layer(directory: Path) -> oci.Layer:
    (directory / "bin").mkdir(parents=True)
    shutil.copyfile(BUSYBOX, directory / "bin" / "busybox")
    (directory / "bin" / "busybox").chmod(0o755)
    for sub in ("tmp", "www"):
        (directory / sub).mkdir()
    (directory / "tmp").chmod(0o1777)
    (directory / "etc").mkdir()
    (directory / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
    (directory / "etc" / "group").write_text("root:x:0:\nnobody:x:65534:\n")
    applets = proc.run([str(BUSYBOX), "--list"], step="busybox --list").split()
    links = tuple((f"/bin/{applet}", "busybox") for applet in sorted(set(applets)) if applet != "busybox")
    return oci.Layer(trees=((directory, "/"),), links=links)


def images_key(component_keys: dict[str, str], pause: Path, rootfs: Path) -> str:
    ca = _file_sha(HOST_CA_BUNDLE) if HOST_CA_BUNDLE.is_file() else None
    return _sha("images", IMAGES_RECIPE, component_keys, _file_sha(pause), str(rootfs.parent.name), ca, _file_sha(BUSYBOX))


def ensure_images(component_dirs: dict[str, Path], pause: Path, rootfs: Path, log: Log = progress) -> list[Path]:
    """The images kubeadm deploys, and the busybox check image, as OCI layout tars."""
    keys = {name: _stamp_key(component_dirs[name]) for name in ("kubernetes", "etcd", "coredns")}
    key = images_key(keys, pause, rootfs)
    final = kind_root() / f"images-v{versions.KUBERNETES}-{key[:12]}"
    specs = image_specs(component_dirs["kubernetes"], component_dirs["etcd"], component_dirs["coredns"], pause)
    names = [*(s.name for s in specs), busybox_image_name()]
    with proc.file_lock(kind_root() / f".{final.name}.lock"):
        if proc.is_done(final, key) and all((final / _layout_file(n)).is_file() for n in names):
            return [final / _layout_file(n) for n in names]
        log(f"writing {len(names)} images (control plane, addons, busybox) as OCI layouts")
        staged = proc.staging(final)
        work = staged / ".work"
        try:
            base = oci.Layer(trees=((_base_tree(work / "base"), "/"),))
            rootfs_tree = None
            built: dict[str, str] = {}
            for index, spec in enumerate(specs):
                layers: list[oci.Layer] = []
                if spec.rootfs:
                    if rootfs_tree is None:
                        rootfs_tree = work / "rootfs"
                        rootfs_tree.mkdir(parents=True)
                        # /dev holds device nodes: a container gets its own, and a layer never needs them.
                        proc.run(["tar", "-C", str(rootfs_tree), "--numeric-owner", "--exclude=./dev/*", "-xpf",
                                  str(rootfs)], step="extract the rootfs", error=NodeImageError)
                    layers.append(oci.Layer(trees=((rootfs_tree, "/"),)))
                if spec.base:
                    layers.append(base)
                layers.append(oci.Layer(trees=((_files_tree(work / f"files-{index}", spec), "/"),)))
                image = oci.write_layout(staged / _layout_file(spec.name), spec.name, layers,
                                         oci.ImageConfig(entrypoint=spec.entrypoint, user=spec.user))
                built[spec.name] = image.digest
            busybox = oci.write_layout(staged / _layout_file(names[-1]), names[-1], [_busybox_layer(work / "busybox")],
                                       oci.ImageConfig(cmd=("/bin/sh",)))
            built[names[-1]] = busybox.digest
            shutil.rmtree(work)
            proc.publish(staged, final, key, {"images": built})
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    return [final / _layout_file(n) for n in names]


def _repository(name: str) -> str:
    """An image name without its tag (a registry's port is not a tag)."""
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def _layout_file(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".tar"


def layout_identity(path: Path) -> tuple[str, str]:
    """(image name, manifest digest) of a one-image OCI layout tar, read from its index.json."""
    try:
        with tarfile.open(path) as tar:
            member = tar.extractfile("index.json")
            index = json.loads(member.read()) if member else {}
    except (OSError, tarfile.TarError, KeyError, ValueError) as exc:
        raise NodeImageError(f"{path} is not an OCI image layout tar: {exc}") from exc
    manifests = index.get("manifests") or []
    if len(manifests) != 1:
        raise NodeImageError(f"{path}: expected one image in its index.json, found {len(manifests)}")
    annotations = manifests[0].get("annotations") or {}
    name = annotations.get("io.containerd.image.name") or annotations.get("org.opencontainers.image.ref.name")
    if not name:
        raise NodeImageError(f"{path}: its image has no name (io.containerd.image.name annotation)")
    return str(name), str(manifests[0]["digest"])


# --- the node image ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeImage:
    tag: str
    key: str
    built: bool
    timings: dict[str, float]
    components: tuple[ComponentResult, ...] = ()
    # every preloaded image: name -> manifest digest (pods may name it either way)
    preloaded: tuple[tuple[str, str], ...] = ()

    def reference(self, name: str) -> str:
        """A preloaded image's digest reference (repository@sha256:...)."""
        digest = dict(self.preloaded)[name]
        return f"{_repository(name)}@{digest}"

    def size_bytes(self, docker: str = "docker") -> int:
        out = proc.run([docker, "image", "inspect", "--format", "{{.Size}}", self.tag], step="docker image inspect")
        return int(out.strip())


def _image_exists(tag: str, docker: str = "docker") -> bool:
    return proc.attempt([docker, "image", "inspect", "--format", "{{.Id}}", tag], timeout=60).returncode == 0


def ensure_node_image(extra_images: Sequence[Path] = (), log: Log = progress) -> str:
    """The tag of the kind node image (built if missing), with `extra_images` (OCI image layout
    tars, e.g. written by toolchain.oci) preloaded beside Kubernetes' own images."""
    return build_node_image(extra_images, log=log).tag


def build_node_image(extra_images: Sequence[Path] = (), *, log: Log = progress, force: bool = False,
                     timeouts: Timeouts | None = None) -> NodeImage:
    timeouts = timeouts or from_environment_and(())
    timings: dict[str, float] = {}
    extras = sorted({layout_identity(Path(p)) + (str(Path(p).resolve()),) for p in extra_images})
    ensure_build_packages(log, timeouts)
    started = time.monotonic()
    results = ensure_components(NODE_COMPONENTS, log=log)
    timings["go components"] = time.monotonic() - started
    dirs = {name: result.directory for name, result in results.items()}
    pause = _timed("pause", timings, lambda: ensure_pause(log))
    rootfs = _timed("rootfs", timings, lambda: ensure_rootfs(log, timeouts))
    images = _timed("images", timings, lambda: ensure_images(dirs, pause, rootfs, log))
    preload = [*images, *(Path(p) for _, _, p in extras)]
    preloaded = tuple(layout_identity(p) for p in preload)
    key = _sha("node", NODE_RECIPE, versions.KIND, versions.KUBERNETES, rootfs.parent.name,
               {name: _stamp_key(d) for name, d in dirs.items()}, _file_sha(pause),
               [layout_identity(p)[1] for p in images], [(n, d) for n, d, _ in extras])
    tag = f"{NODE_IMAGE_REPOSITORY}:v{versions.KUBERNETES}-{key[:12]}"
    with proc.file_lock(cache_dir("locks") / "kind-node-image.lock"):
        if not force and _image_exists(tag):
            return NodeImage(tag, key, False, timings, tuple(results.values()), preloaded)
        log(f"assembling the kind node image {tag} ({len(preload)} images preloaded)")
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix="node-image.", dir=kind_root()))
        try:
            root = work / "rootfs"
            root.mkdir()
            proc.run(["tar", "-C", str(root), "--numeric-owner", "-xpf", str(rootfs)], step="extract the rootfs",
                     error=NodeImageError)
            _install_kind_files(root)
            _install_binaries(root, dirs)
            _preload(root, dirs["containerd"], preload, work, log)
            timings["assemble"] = time.monotonic() - started
            started = time.monotonic()
            _docker_import(root, work, tag, key, timeouts.docker_command)
            timings["docker import"] = time.monotonic() - started
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _remove_older_node_images(tag)
    return NodeImage(tag, key, True, timings, tuple(results.values()), preloaded)


def _install_kind_files(root: Path) -> None:
    """kind's base-image files from the kind module zip, with the modes its Dockerfile gives them
    (scripts and directories 0755, the rest 0644)."""
    files = module_dir(KIND_MODULE, f"v{versions.KIND}") / "images" / "base" / "files"

    def put(source: Path, target: str, mode: int) -> None:
        destination = _inside(root, target)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        destination.chmod(mode)

    for source in sorted((files / "usr/local/bin").iterdir()):
        put(source, f"usr/local/bin/{source.name}", 0o755)
    for source in sorted((files / "kind").rglob("*")):
        if source.is_file():
            relative = source.relative_to(files).as_posix()
            put(source, relative, 0o755 if relative.startswith("kind/bin/") else 0o644)
    for directory in ("kind", "kind/bin"):
        _inside(root, directory).chmod(0o755)
    for sub in ("LICENSES", "etc", "etc/default", "etc/sysctl.d", "etc/systemd/system",
                "etc/systemd/system/kubelet.service.d"):
        for source in sorted((files / sub).iterdir()):
            if source.is_file() and source.name not in UNITS_SKIPPED:
                put(source, f"{sub}/{source.name}", 0o644)
    config = _inside(root, "etc/containerd/config.toml")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(containerd_config((files / "etc/containerd/config.toml").read_text()))
    config.chmod(0o644)
    # `systemctl enable` / `mask`, as the Dockerfile runs them: every unit here is WantedBy multi-user.target.
    wants = _inside(root, "etc/systemd/system/multi-user.target.wants/x").parent
    wants.mkdir(parents=True, exist_ok=True)
    for unit in UNITS_ENABLED:
        if not (files / "etc/systemd/system" / unit).is_file():
            raise NodeImageError(f"kind v{versions.KIND} has no {unit} among its base-image files")
        (wants / unit).unlink(missing_ok=True)
        (wants / unit).symlink_to(f"/etc/systemd/system/{unit}")
    for unit in UNITS_MASKED:
        masked = _inside(root, f"etc/systemd/system/{unit}")
        masked.unlink(missing_ok=True)
        masked.symlink_to("/dev/null")
    init = _inside(root, "sbin/init")
    if not os.path.lexists(init):
        init.symlink_to("/usr/lib/systemd/systemd")
    for directory in ("etc/kubernetes/manifests", "opt/cni/bin", "etc/cni/net.d"):
        _inside(root, f"{directory}/x").parent.mkdir(parents=True, exist_ok=True)
    _inside(root, "kind/version").write_text(f"v{versions.KUBERNETES}")  # kind reads it for kubeadm's config API


def containerd_config(kind_config: str) -> str:
    """kind's containerd config, changed for this kind of machine:
    - the pause image kubeadm of the pinned Kubernetes deploys;
    - `restrict_oom_score_adj`: without CAP_SYS_RESOURCE (missing here) no process may lower its
      OOM score, and sandboxes' -998 would make runc fail;
    - the cgroupfs driver: on a cgroup v1 host runc's systemd driver freezes a container while it
      applies limits, and containers with tiny CPU limits (10m: KServe's modelcar sidecar) fail
      "unable to freeze". kubelet 1.34 takes the driver from the CRI, so nothing else changes;
    - no fuse-overlayfs proxy plugin (rootless only; not built)."""
    text = re.sub(r"\[proxy_plugins\]\n.*?address = \"[^\"]*\"\n", "", kind_config, flags=re.S)
    text = re.sub(r'sandbox_image = "registry\.k8s\.io/pause:[^"]*"',
                  f'sandbox_image = "registry.k8s.io/pause:{versions.PAUSE}"', text)
    text = text.replace("restrict_oom_score_adj = false", "restrict_oom_score_adj = true")
    if text.count("SystemdCgroup = true") != 2:
        raise NodeImageError("kind's containerd config changed shape (SystemdCgroup): review containerd_config")
    text = text.replace("SystemdCgroup = true", "SystemdCgroup = false")
    if (f"pause:{versions.PAUSE}" not in text or "restrict_oom_score_adj = true" not in text
            or "fuse-overlayfs" in text):
        raise NodeImageError("kind's containerd config changed shape: review containerd_config")
    return text


def _install_binaries(root: Path, dirs: dict[str, Path]) -> None:
    placed = [
        *((dirs["containerd"] / b, f"usr/local/bin/{b}") for b in ("containerd", "containerd-shim-runc-v2", "ctr")),
        (dirs["crictl"] / "crictl", "usr/local/bin/crictl"),
        (dirs["runc"] / "runc", "usr/local/sbin/runc"),
        *((dirs["cni-plugins"] / p, f"opt/cni/bin/{p}") for p in CNI_PLUGINS),
        # kind's builder puts exactly these in /usr/bin
        *((dirs["kubernetes"] / b, f"usr/bin/{b}") for b in ("kubelet", "kubeadm", "kubectl")),
    ]
    for source, target in placed:
        destination = _inside(root, target)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        destination.chmod(0o755)
    # The runtime's base spec, as kind's Dockerfile makes it: `ctr oci spec`, the hook that mounts
    # the product files, no rlimits.
    spec = json.loads(proc.run([str(dirs["containerd"] / "ctr"), "oci", "spec"], step="ctr oci spec",
                               error=NodeImageError))
    spec.setdefault("hooks", {}).setdefault("createContainer", []).append({"path": "/kind/bin/mount-product-files.sh"})
    spec.get("process", {}).pop("rlimits", None)
    _inside(root, "etc/containerd/cri-base.json").write_text(json.dumps(spec, indent=4) + "\n")


def _preload(root: Path, containerd_dir: Path, layouts: Sequence[Path], work: Path, log: Log) -> None:
    """Import the images into the node's containerd store: the same containerd, run on the host
    against the rootfs's /var/lib/containerd, CRI off, its own socket (kind's builder does this
    inside a build container)."""
    state = Path(tempfile.mkdtemp(prefix="sc-preload-"))  # short: a unix socket path has a length limit
    socket = state / "containerd.sock"
    config = state / "config.toml"
    config.write_text(
        "version = 3\n"
        f'root = "{_inside(root, "var/lib/containerd")}"\n'
        f'state = "{state / "state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", '
        '"io.containerd.cri.v1.images", "io.containerd.nri.v1.nri", "io.containerd.internal.v1.opt"]\n'
        f'[grpc]\n  address = "{socket}"\n[ttrpc]\n  address = "{socket}.ttrpc"\n'
    )
    name = "preload-containerd"
    process = proc.spawn(name, [str(containerd_dir / "containerd"), "--config", str(config)], work)
    try:
        deadline = time.monotonic() + PRELOAD_SOCKET_WAIT_S
        while not socket.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise NodeImageError(f"containerd for the preload did not start:\n{proc.log_tail(work, name)}")
            time.sleep(0.1)
        ctr = [str(containerd_dir / "ctr"), "--address", str(socket), "--namespace", "k8s.io"]
        wanted = set()
        for layout in layouts:
            image, digest = layout_identity(layout)
            log(f"  preloading {image}")
            # kind's flags, but --digests (it names an extra record by the date: not reproducible):
            # pinned (kubelet never garbage-collects them), unpacked on first use.
            proc.run([*ctr, "images", "import", "--label=io.cri-containerd.pinned=pinned", "--all-platforms",
                      "--no-unpack", str(layout)], step=f"ctr images import {layout.name}",
                     timeout=_docker_timeout(), error=NodeImageError)
            # The digest reference, as a pull records it: pods may name the image by digest.
            by_digest = f"{_repository(image)}@{digest}"
            proc.run([*ctr, "images", "tag", image, by_digest], step=f"ctr images tag {by_digest}",
                     timeout=_docker_timeout(), error=NodeImageError)
            wanted |= {image, by_digest}
        listed = set(proc.run([*ctr, "images", "list", "-q"], step="ctr images list", error=NodeImageError).split())
        if wanted - listed:
            raise NodeImageError(f"preloaded images missing from the node's store: {sorted(wanted - listed)}")
    finally:
        proc.stop(work, name)
        process.wait()
        shutil.rmtree(state, ignore_errors=True)


def _docker_import(root: Path, work: Path, tag: str, key: str, timeout: float) -> None:
    """One layer (`docker import`), then kind's base-image metadata in a build step: dockerd 20.10
    refuses STOPSIGNAL as an import change ("stopsignal is not a valid change command")."""
    archive = work / "node.tar"
    proc.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(archive), "."], step="tar the node rootfs",
             error=NodeImageError)
    shutil.rmtree(root)
    layer_tag = f"{tag}-rootfs"
    proc.run(["docker", "import", str(archive), layer_tag], step="docker import the node rootfs", timeout=timeout,
             error=NodeImageError)
    archive.unlink()
    dockerfile = "\n".join([
        f"FROM {layer_tag}",
        "ENV container=docker",
        f"ENV {STATIC_PATH}",
        "STOPSIGNAL SIGRTMIN+3",
        'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]',
        f'LABEL {IMAGE_KEY_LABEL}="{key}"',
        "",
    ])
    try:
        # The classic builder: a FROM of a local image, nothing pulled, no BuildKit needed.
        proc.run(["docker", "build", "-q", "-t", tag, "-"], step="docker build (node image metadata)",
                 timeout=timeout, input=dockerfile, env={**os.environ, "DOCKER_BUILDKIT": "0"}, error=NodeImageError)
    finally:
        proc.attempt(["docker", "rmi", layer_tag], timeout=timeout)  # untags; the layer stays as the parent


def _remove_older_node_images(current: str) -> None:
    """Node images of this repository beyond the KEEP_NODE_IMAGES newest (older recipes, other
    extra images): removed unless a container uses them."""
    listed = proc.attempt(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", NODE_IMAGE_REPOSITORY],
                          timeout=60)  # newest first
    tags = [t for t in listed.stdout.split() if t.startswith(f"{NODE_IMAGE_REPOSITORY}:") and t != current]
    for tag in tags[KEEP_NODE_IMAGES - 1:]:
        proc.attempt(["docker", "rmi", tag], timeout=_docker_timeout())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving_conformance.toolchain.kindnode",
                                     description="Build kind and its node image from published sources (cached).")
    parser.add_argument("--extra-image", action="append", default=[], type=Path, metavar="LAYOUT_TAR",
                        help="an OCI image layout tar to preload into the node's containerd (repeatable)")
    parser.add_argument("--force", action="store_true", help="assemble the node image again even when it exists")
    args = parser.parse_args(argv)
    try:
        kind = ensure_components(("kind",))["kind"]
        image = build_node_image(args.extra_image, force=args.force)
    except (NodeImageError, BuildError, proc.CommandError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for result in (kind, *image.components):
        print(f"{result.name:<12} {result.version:<9} {result.status:<6} {result.seconds:8.1f} s  {result.directory}")
    for step, seconds in image.timings.items():
        print(f"{step:<22} {seconds:8.1f} s")
    print(f"kind        {kind.directory / 'kind'}")
    print(f"node image  {image.tag} ({'built' if image.built else 'cached'}, {image.size_bytes() / 1e6:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build the local testbed's and the kind node image's binaries from published packages, cached
outside the repository.

No registry reachable from a CI machine serves kube-apiserver, etcd, KServe, kind, containerd or
runc binaries, but the Go module proxy serves their source modules. Each component is built from
a small wrapper module under ``toolchain/<name>/`` whose ``go.sum`` pins every dependency.
Builds run at a lower CPU priority (`proc.niced`).

Every component lands in ``<cache>/bin/<name>-<version>/`` with a stamp file keyed by the
version and the wrapper's go.mod/go.sum; a component whose stamp matches is not rebuilt.

    python -m serving_conformance.toolchain.go                  # build what is missing
    python -m serving_conformance.toolchain.go --force kserve   # rebuild one component
    python -m serving_conformance.toolchain.go --sync-wrappers  # after changing a pin

One module (about 700 lines): every Go build shares the wrapper modules, the cache layout and its
keys, the build command and its checks; the components are data (one function each) at the top.
"""

from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving_conformance.base import proc, versions
from serving_conformance.base.cache import cache_dir
from serving_conformance.base.data import TOOLCHAIN
from serving_conformance.base.progress import progress

Log = Callable[[str], None]

# The wrappers live in the repository, beside the package (an editable install or a checkout).
TOOLCHAIN_DIR = TOOLCHAIN
# Seconds between "still building" lines: cold builds run for many minutes on 2 cores.
HEARTBEAT_SECONDS = 30.0
OUTPUT_TAIL_LINES = 40

KUBERNETES_MODULE = "k8s.io/kubernetes"
KWOK_MODULE = "sigs.k8s.io/kwok"
KSERVE_MODULE = "github.com/kserve/kserve"
ETCD_SERVER_MODULE = "go.etcd.io/etcd/server/v3"
GATEWAY_API_MODULE = "sigs.k8s.io/gateway-api"
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
KIND_MODULE = "sigs.k8s.io/kind"
CONTAINERD_MODULE = "github.com/containerd/containerd/v2"
RUNC_MODULE = "github.com/opencontainers/runc"
CRI_TOOLS_MODULE = "sigs.k8s.io/cri-tools"
CNI_PLUGINS_MODULE = "github.com/containernetworking/plugins"
COREDNS_MODULE = "github.com/coredns/coredns"
KUBELET_API_MODULE = "k8s.io/kubelet"
GPU_DEVICE_PLUGIN = "gpu-device-plugin"
DISTRIBUTION_MODULE = "github.com/distribution/distribution/v3"
# The `tool` directive a wrapper lists its binaries with needs this language version at least.
WRAPPER_GO_MIN = "1.24"


class BuildError(RuntimeError):
    """A build step failed; the message names the step and ends with the tail of its output."""


@dataclass(frozen=True)
class GoComponent:
    """Binaries built with `go build` from one wrapper module under toolchain/."""

    name: str
    module: str
    version: str  # module version, with the leading "v"
    tools: tuple[tuple[str, str], ...]  # (binary name, main package)
    ldflags_x: tuple[tuple[str, str], ...] = ()  # -X settings (the version the binaries report)
    # Upstream replaces by a local path (Kubernetes' ./staging/src/..., etcd's ../api) point at
    # modules published from the same tag: the wrapper requires them at this version instead.
    local_replace_version: str | None = None
    # (binary, arguments, text its output must contain): proves the build reports its version.
    version_check: tuple[str, tuple[str, ...], str] | None = None
    # Build options beyond the defaults (static, CGO off, no tags): cgo for C parts (runc's
    # nsenter), build tags, a build mode, and -ldflags words before the -X settings.
    cgo: bool = False
    tags: tuple[str, ...] = ()
    buildmode: str | None = None
    link_flags: tuple[str, ...] = ()
    # The wrapper holds this project's own main package (its *.go files), built against `module`;
    # its go.mod is written by hand, never rewritten from an upstream one.
    own_source: bool = False

    @property
    def wrapper_dir(self) -> Path:
        return TOOLCHAIN_DIR / self.name

    @property
    def binaries(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.tools)

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(pkg for _, pkg in self.tools)

    @property
    def dir_name(self) -> str:
        return f"{self.name}-{self.version}"

    def build_options(self) -> dict[str, Any]:
        """The options that differ from the defaults (part of the cache key only when set)."""
        options: dict[str, Any] = {}
        if self.cgo:
            options["cgo"] = True
        if self.tags:
            options["tags"] = list(self.tags)
        if self.buildmode:
            options["buildmode"] = self.buildmode
        return options


@dataclass(frozen=True)
class ComponentResult:
    name: str
    version: str
    directory: Path
    status: str  # "built" or "cached"
    seconds: float


@dataclass(frozen=True)
class TestbedBinaries:
    """Absolute paths of every binary the local testbed runs."""

    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kwok: Path
    kwokctl: Path
    etcd: Path
    kserve_manager: Path
    results: tuple[ComponentResult, ...] = field(default=(), compare=False, repr=False)


# The Kubernetes binaries: the testbed runs the control plane's; the kind node image takes
# kubelet, kubeadm, kubectl and kube-proxy (and the control plane's, as images) from the same build.
KUBERNETES_BINARIES = (
    "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet", "kubeadm", "kube-proxy",
)


def kubernetes_staging_version() -> str:
    """The version Kubernetes' staging modules (k8s.io/client-go, k8s.io/kubelet, ...) are published
    at from the same tag: v0.X.Y for v1.X.Y."""
    _, minor, patch = versions.KUBERNETES.split(".")
    return f"v0.{minor}.{patch}"


def kubernetes_component() -> GoComponent:
    version = f"v{versions.KUBERNETES}"
    major, minor, _ = versions.KUBERNETES.split(".")
    x: list[tuple[str, str]] = []
    # Both packages carry the version (kubectl reads client-go's); kwokctl parses `--version`.
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        x += [
            (f"{pkg}.gitVersion", version),
            (f"{pkg}.gitMajor", major),
            (f"{pkg}.gitMinor", minor),
            (f"{pkg}.gitTreeState", "clean"),
            (f"{pkg}.gitCommit", ""),
        ]
    return GoComponent(
        name="kubernetes",
        module=KUBERNETES_MODULE,
        version=version,
        tools=tuple((b, f"{KUBERNETES_MODULE}/cmd/{b}") for b in KUBERNETES_BINARIES),
        ldflags_x=tuple(x),
        local_replace_version=kubernetes_staging_version(),
        version_check=("kube-apiserver", ("--version",), f"Kubernetes {version}"),
    )


def kwok_component() -> GoComponent:
    version = f"v{versions.KWOK}"
    return GoComponent(
        name="kwok",
        module=KWOK_MODULE,
        version=version,
        tools=(("kwok", f"{KWOK_MODULE}/cmd/kwok"), ("kwokctl", f"{KWOK_MODULE}/cmd/kwokctl")),
        version_check=("kwokctl", ("--version",), versions.KWOK),
    )


def kserve_component() -> GoComponent:
    return GoComponent(
        name="kserve",
        module=KSERVE_MODULE,
        version=f"v{versions.KSERVE}",
        tools=(("manager", f"{KSERVE_MODULE}/cmd/manager"),),
    )


def etcd_component() -> GoComponent:
    version = f"v{versions.ETCD}"
    return GoComponent(
        name="etcd",
        module=ETCD_SERVER_MODULE,
        version=version,
        tools=(("etcd", ETCD_SERVER_MODULE),),  # the module root is etcd's main package
        local_replace_version=version,  # ../api, ../client/v3, ... are released with the server
        version_check=("etcd", ("--version",), f"etcd Version: {versions.ETCD}"),
    )


def kustomize_component() -> GoComponent:
    """kustomize, the version kubectl of the pinned Kubernetes embeds: renders the manifests'
    kustomizations the way the platform's tools do (a small build, about a minute)."""
    version = f"v{versions.KUSTOMIZE}"
    return GoComponent(
        name="kustomize",
        module=KUSTOMIZE_MODULE,
        version=version,
        tools=(("kustomize", KUSTOMIZE_MODULE),),
        ldflags_x=(("sigs.k8s.io/kustomize/api/provenance.buildDate", "unknown"),
                   ("sigs.k8s.io/kustomize/api/provenance.version", f"kustomize/{version}")),
    )


def kind_component() -> GoComponent:
    version = f"v{versions.KIND}"
    return GoComponent(name="kind", module=KIND_MODULE, version=version, tools=(("kind", KIND_MODULE),),
                       version_check=("kind", ("version",), f"kind {version} "))


def containerd_component() -> GoComponent:
    """containerd as kind's base image builds it (static, CGO off, no aufs/zfs/btrfs/devmapper)."""
    version = f"v{versions.KIND_CONTAINERD}"
    return GoComponent(
        name="containerd",
        module=CONTAINERD_MODULE,
        version=version,
        tools=tuple((b, f"{CONTAINERD_MODULE}/cmd/{b}") for b in ("containerd", "containerd-shim-runc-v2", "ctr")),
        ldflags_x=((f"{CONTAINERD_MODULE}/version.Version", version),
                   (f"{CONTAINERD_MODULE}/version.Package", CONTAINERD_MODULE)),
        tags=("no_aufs", "no_zfs", "no_btrfs", "no_devmapper"),
        version_check=("containerd", ("--version",), f" {version}"),
    )


def runc_component() -> GoComponent:
    """runc as its `make static` builds it: cgo (libcontainer/nsenter is C) with libseccomp
    (Debian: gcc, pkg-config, libseccomp-dev), a static PIE; it reports the VERSION file's version."""
    return GoComponent(
        name="runc",
        module=RUNC_MODULE,
        version=f"v{versions.KIND_RUNC}",
        tools=(("runc", RUNC_MODULE),),
        cgo=True,
        tags=("seccomp", "urfave_cli_no_docs", "netgo", "osusergo"),
        buildmode="pie",
        link_flags=("-linkmode", "external", "-extldflags", "-static-pie"),
        version_check=("runc", ("--version",), f"runc version {versions.KIND_RUNC}"),
    )


def crictl_component() -> GoComponent:
    version = f"v{versions.KIND_CRICTL}"
    return GoComponent(
        name="crictl",
        module=CRI_TOOLS_MODULE,
        version=version,
        tools=(("crictl", f"{CRI_TOOLS_MODULE}/cmd/crictl"),),
        ldflags_x=((f"{CRI_TOOLS_MODULE}/pkg/version.Version", version),),
        version_check=("crictl", ("--version",), f"crictl version {version}"),
    )


CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap", "ptp")


def cni_plugins_component() -> GoComponent:
    version = f"v{versions.KIND_CNI_PLUGINS}"
    where = {"bridge": "main", "loopback": "main", "ptp": "main", "host-local": "ipam", "portmap": "meta"}
    return GoComponent(
        name="cni-plugins",
        module=CNI_PLUGINS_MODULE,
        version=version,
        tools=tuple((p, f"{CNI_PLUGINS_MODULE}/plugins/{where[p]}/{p}") for p in CNI_PLUGINS),
        ldflags_x=((f"{CNI_PLUGINS_MODULE}/pkg/utils/buildversion.BuildVersion", version),),
        version_check=("ptp", ("--version",), f"CNI ptp plugin {version}"),
    )


def coredns_component() -> GoComponent:
    version = f"v{versions.COREDNS}"
    return GoComponent(name="coredns", module=COREDNS_MODULE, version=version,
                       tools=(("coredns", COREDNS_MODULE),),
                       version_check=("coredns", ("-version",), f"CoreDNS-{versions.COREDNS}"))


def gpu_device_plugin_component() -> GoComponent:
    """The simulated GPUs' device plugin (toolchain/gpu-device-plugin/main.go), against the
    kubelet's device plugin API of the Kubernetes the kind nodes run."""
    return GoComponent(name=GPU_DEVICE_PLUGIN, module=KUBELET_API_MODULE, version=kubernetes_staging_version(),
                       tools=((GPU_DEVICE_PLUGIN, f"serving-conformance.local/toolchain/{GPU_DEVICE_PLUGIN}"),),
                       own_source=True)


def registry_component() -> GoComponent:
    """distribution's registry: the local mirror that serves the published images' names."""
    version = f"v{versions.DISTRIBUTION}"
    return GoComponent(name="registry", module=DISTRIBUTION_MODULE, version=version,
                       tools=(("registry", f"{DISTRIBUTION_MODULE}/cmd/registry"),),
                       ldflags_x=((f"{DISTRIBUTION_MODULE}/version.version", version),),
                       version_check=("registry", ("--version",), version))


def go_components() -> tuple[GoComponent, ...]:
    """The local testbed's components. Cheapest first, so a broken setup fails before the long builds."""
    return (etcd_component(), kwok_component(), kubernetes_component(), kserve_component())


def kind_node_components() -> tuple[GoComponent, ...]:
    """What a kind cluster built here needs: kind itself, and the node image's binaries. Cheapest
    first; Kubernetes and etcd are the testbed's own builds."""
    return (kind_component(), cni_plugins_component(), runc_component(), crictl_component(), gpu_device_plugin_component(),
            etcd_component(), containerd_component(), coredns_component(), kubernetes_component())


def all_components() -> tuple[GoComponent, ...]:
    seen: dict[str, GoComponent] = {}
    for component in (*go_components(), kustomize_component(), *kind_node_components(), registry_component()):
        seen.setdefault(component.name, component)
    return tuple(seen.values())


COMPONENT_NAMES = tuple(c.name for c in go_components())
KIND_NODE_NAMES = tuple(c.name for c in kind_node_components())
ALL_NAMES = tuple(c.name for c in all_components())


# --- running commands -------------------------------------------------------------------


def _go_binary() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "Go is not on PATH: the testbed builds kube-apiserver, kwok and KServe from Go modules "
            "(Go >= 1.26 is needed, see toolchain/*/go.mod)"
        )
    return go


def _go_env(*, mod: str = "readonly", cgo: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    # readonly: a build never edits the committed go.mod/go.sum. buildvcs=false: the wrappers
    # sit in this repository, whose commit must not change the binaries.
    env["GOFLAGS"] = f"-mod={mod} -buildvcs=false"
    env["GOWORK"] = "off"  # each wrapper is built alone, whatever go.work is around
    # Static binaries, like Kubernetes' own release builds; no C compiler needed (but where a
    # component has C parts: runc, linked statically all the same).
    env["CGO_ENABLED"] = "1" if cgo else "0"
    return env


def _run(cmd: Sequence[str], *, step: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    return proc.run(cmd, step=step, cwd=cwd, env=env, error=BuildError)


def _run_with_progress(
    cmd: Sequence[str], *, step: str, cwd: Path, env: dict[str, str], log: Log
) -> None:
    """Run a long command, logging a heartbeat with counts of what it is doing."""
    tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
    counts = {"downloaded": 0, "compiled": 0}
    started = time.monotonic()
    process = subprocess.Popen(
        list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace",
    )

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            # `go build -v` prints one line per compiled package, plus one per module fetched.
            counts["downloaded" if line.startswith("go: downloading") else "compiled"] += 1

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        while True:
            try:
                returncode = process.wait(timeout=HEARTBEAT_SECONDS)
                break
            except subprocess.TimeoutExpired:
                log(
                    f"  {step}: {time.monotonic() - started:.0f} s, {counts['downloaded']} modules "
                    f"downloaded, {counts['compiled']} packages compiled"
                )
    except BaseException:
        process.kill()
        process.wait()
        raise
    reader.join()
    if returncode != 0:
        raise BuildError(
            f"{step} failed (exit {returncode}): {' '.join(cmd)}\n"
            f"--- last lines of output ---\n" + "\n".join(tail)
        )


# --- Go modules -------------------------------------------------------------------------


@functools.cache
def module_download(module: str, version: str) -> dict[str, str]:
    """`go mod download -json module@version`: fetches the module zip, returns Dir, GoMod, Sum..."""
    step = f"go mod download {module}@{version}"
    # Run outside any module, so no wrapper's requirements or replaces interfere.
    out = _run([_go_binary(), "mod", "download", "-json", f"{module}@{version}"],
               step=step, cwd=cache_dir(), env=_go_env(mod="mod"))
    info: dict[str, str] = json.loads(out)
    if info.get("Error"):
        raise BuildError(f"{step} failed: {info['Error']}")
    return info


def module_dir(module: str, version: str) -> Path:
    """The read-only source directory of a module version in the Go module cache.

    e.g. module_dir("github.com/kserve/kserve", "v0.19.0") / "config/crd/full"
    """
    return Path(module_download(module, version)["Dir"])


def kserve_source_dir() -> Path:
    return module_dir(KSERVE_MODULE, f"v{versions.KSERVE}")


def gateway_api_source_dir() -> Path:
    return module_dir(GATEWAY_API_MODULE, f"v{versions.GATEWAY_API}")


def _gomod_json(gomod: Path) -> dict[str, Any]:
    """A go.mod file parsed by Go itself (`go mod edit -json`)."""
    out = _run([_go_binary(), "mod", "edit", "-json", str(gomod)], step=f"read {gomod}")
    parsed: dict[str, Any] = json.loads(out)
    return parsed


def _wrapper_hash(component: GoComponent) -> str:
    digest = hashlib.sha256()
    own = sorted(p.name for p in component.wrapper_dir.glob("*.go")) if component.own_source else []
    for name in ("go.mod", "go.sum", *own):
        path = component.wrapper_dir / name
        if not path.is_file():
            raise BuildError(
                f"{path} is missing: the testbed builds from the wrappers in a checkout of this "
                "repository (install it with `pip install -e .`), or run --sync-wrappers"
            )
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _check_wrapper_pin(component: GoComponent) -> None:
    """Fail clearly when versions.py and the committed wrapper disagree."""
    gomod = _gomod_json(component.wrapper_dir / "go.mod")
    required = {r["Path"]: r["Version"] for r in gomod.get("Require") or []}
    found = required.get(component.module)
    if found != component.version:
        raise BuildError(
            f"toolchain/{component.name}/go.mod requires {component.module} {found}, but "
            f"versions.py pins {component.version}: run "
            "`python -m serving_conformance.toolchain.go --sync-wrappers` and commit the result"
        )


def _render_wrapper_gomod(component: GoComponent) -> str:
    """The wrapper's go.mod before `go mod tidy`, derived from the upstream module's go.mod."""
    upstream = _gomod_json(Path(module_download(component.module, component.version)["GoMod"]))
    go_version = upstream.get("Go") or "1.24.0"
    if _language_version(go_version) < _language_version(WRAPPER_GO_MIN):
        go_version = WRAPPER_GO_MIN  # e.g. kind's go.mod says 1.17
    replaces: list[str] = []
    for rep in upstream.get("Replace") or []:
        old, new = rep["Old"], rep["New"]
        old_spec = f"{old['Path']} {old['Version']}" if old.get("Version") else old["Path"]
        if new.get("Version"):
            replaces.append(f"{old_spec} => {new['Path']} {new['Version']}")
        elif new["Path"].endswith("FORBIDDEN_DEPENDENCY"):
            continue  # etcd's guard against importing a module at all: nothing to repeat
        elif component.local_replace_version and new["Path"].startswith(("./", "../")):
            replaces.append(f"{old_spec} => {old['Path']} {component.local_replace_version}")
        else:
            raise BuildError(
                f"{component.module}@{component.version} replaces {old['Path']} with the local path "
                f"{new['Path']}, which has no published equivalent known to this script"
            )
    excludes = [f"{e['Path']} {e['Version']}" for e in upstream.get("Exclude") or []]
    godebug = [f"{g['Key']}={g['Value']}" for g in upstream.get("GoDebug") or []]

    lines = [
        "// Generated by `python -m serving_conformance.toolchain.go --sync-wrappers` from the",
        f"// go.mod of {component.module} {component.version}.",
        f"// Builds: {', '.join(component.binaries)}.",
        "// Upstream replace/exclude/godebug directives apply only to a main module, so they are",
        "// repeated here (a replace by a local path becomes the module published from the same",
        "// tag); go.sum pins every dependency. Do not edit by hand.",
        f"module serving-conformance.local/toolchain/{component.name}",
        "",
        f"go {go_version}",
        "",
    ]
    lines += [f"godebug {g}" for g in godebug] + ([""] if godebug else [])
    lines += ["tool ("] + [f"\t{p}" for p in component.packages] + [")", ""]
    lines += [f"require {component.module} {component.version}", ""]
    if excludes:
        lines += ["exclude ("] + [f"\t{e}" for e in excludes] + [")", ""]
    if replaces:
        lines += ["replace ("] + [f"\t{r}" for r in sorted(replaces)] + [")", ""]
    return "\n".join(lines)


def _language_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def sync_wrappers(log: Log = progress, names: Sequence[str] = ()) -> None:
    """Rewrite each toolchain/<name>/go.mod for the pinned version and refresh go.sum (network)."""
    for component in all_components():
        if (names and component.name not in names) or component.own_source:
            continue
        component.wrapper_dir.mkdir(parents=True, exist_ok=True)
        log(f"syncing toolchain/{component.name} for {component.module} {component.version}")
        (component.wrapper_dir / "go.mod").write_text(_render_wrapper_gomod(component))
        _run([_go_binary(), "mod", "tidy"], step=f"go mod tidy in toolchain/{component.name}",
             cwd=component.wrapper_dir, env=_go_env(mod="mod"))


# --- the cache --------------------------------------------------------------------------


def bin_root() -> Path:
    return cache_dir("bin")


def build_lock(name: str) -> Path:
    """The lock serialising builds of one cached directory across processes (xdist workers)."""
    return bin_root() / f".{name}.lock"


def _check_version(binary: Path, args: Sequence[str], expected: str, step: str) -> None:
    result = proc.attempt([str(binary), *args], timeout=60)
    out = result.stdout + result.stderr  # CNI plugins print their version on stderr
    if result.returncode != 0:
        raise BuildError(f"{step} failed (exit {result.returncode}): {binary.name} {' '.join(args)}\n{proc.tail(out)}")
    if expected not in out:
        raise BuildError(
            f"{step}: expected {expected!r} in the output of {binary.name} {' '.join(args)}, "
            f"got {out.strip()!r}"
        )


def _default_binary_name(package: str) -> str:
    """The file `go build -o DIR/` writes for a main package (a /vN suffix is skipped)."""
    parts = package.split("/")
    if len(parts) > 1 and re.fullmatch(r"v\d+", parts[-1]):
        return parts[-2]
    return parts[-1]


def _ldflags(component: GoComponent) -> str:
    return " ".join(["-s", "-w", *component.link_flags, *(f"-X {k}={v}" for k, v in component.ldflags_x)])


def _key(component: GoComponent) -> str:
    """What a cached build is valid for: the version, the wrapper's pins, the flags and packages
    (and the build options, where a component sets any)."""
    parts: list[Any] = [component.version, _wrapper_hash(component), _ldflags(component), component.packages]
    if component.build_options():
        parts.append(component.build_options())
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def build_command(component: GoComponent, output_dir: Path) -> list[str]:
    """The `go build` of a component into `output_dir`, at a lower CPU priority."""
    cmd = [_go_binary(), "build", "-v", "-trimpath"]
    if component.tags:
        cmd += ["-tags", ",".join(component.tags)]
    if component.buildmode:
        cmd.append(f"-buildmode={component.buildmode}")
    cmd += ["-ldflags", _ldflags(component), "-o", f"{output_dir}{os.sep}", *component.packages]
    return proc.niced(cmd)


def component_dir(component: GoComponent) -> Path:
    return bin_root() / component.dir_name


def is_built(component: GoComponent) -> bool:
    """Built and cached for the current pins (nothing is built here)."""
    return proc.is_done(component_dir(component), _key(component), component.binaries)


def missing_components(names: Sequence[str] = COMPONENT_NAMES) -> list[str]:
    """The components not built yet (nothing is built here)."""
    return [c.name for c in all_components() if c.name in names
            and not proc.is_done(bin_root() / c.dir_name, _key(c), c.binaries)]


def _ensure_go_component(component: GoComponent, *, force: bool, log: Log) -> ComponentResult:
    started = time.monotonic()
    final = bin_root() / component.dir_name
    ldflags = _ldflags(component)
    key = _key(component)
    with proc.file_lock(build_lock(component.dir_name)):
        if not force and proc.is_done(final, key, component.binaries):
            seconds = time.monotonic() - started
            return ComponentResult(component.name, component.version, final, "cached", seconds)
        _check_wrapper_pin(component)
        log(f"building {component.name} {component.version}: {', '.join(component.binaries)} "
            f"(cold builds take minutes)")
        staging = proc.staging(final)
        try:
            _run_with_progress(build_command(component, staging), step=f"go build {component.name} {component.version}",
                               cwd=component.wrapper_dir, env=_go_env(cgo=component.cgo), log=log)
            for name, package in component.tools:
                built = _default_binary_name(package)
                if built != name:
                    os.rename(staging / built, staging / name)
            if component.version_check:
                binary, args, expected = component.version_check
                _check_version(staging / binary, args, expected, step=f"check {binary} version")
            proc.publish(staging, final, key, {"component": component.name, "version": component.version,
                                               "ldflags": ldflags, **component.build_options()})
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    seconds = time.monotonic() - started
    log(f"built {component.name} {component.version} in {seconds:.0f} s")
    return ComponentResult(component.name, component.version, final, "built", seconds)


def ensure_components(
    names: Sequence[str] = COMPONENT_NAMES, *, force: Sequence[str] = (), log: Log = progress
) -> dict[str, ComponentResult]:
    """Build or reuse the named components; returns each one's result, in build order."""
    results: dict[str, ComponentResult] = {}
    for component in all_components():
        if component.name in names:
            results[component.name] = _ensure_go_component(
                component, force=component.name in force, log=log
            )
    return results


def ensure_binaries(log: Log = progress) -> TestbedBinaries:
    """Every testbed binary, building what is missing (the first run takes a long while)."""
    r = ensure_components(log=log)
    kube, kwok = r["kubernetes"].directory, r["kwok"].directory
    return TestbedBinaries(
        kube_apiserver=kube / "kube-apiserver",
        kube_controller_manager=kube / "kube-controller-manager",
        kube_scheduler=kube / "kube-scheduler",
        kubectl=kube / "kubectl",
        kwok=kwok / "kwok",
        kwokctl=kwok / "kwokctl",
        etcd=r["etcd"].directory / "etcd",
        kserve_manager=r["kserve"].directory / "manager",
        results=tuple(r.values()),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving_conformance.toolchain.go",
        description="Build the local testbed's binaries into the cache (only what is missing).",
    )
    parser.add_argument("components", nargs="*", metavar="COMPONENT",
                        help=f"some of {', '.join(ALL_NAMES)} (default: the testbed's)")
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    parser.add_argument("--sync-wrappers", action="store_true",
                        help="rewrite toolchain/*/go.mod and go.sum for the pinned versions, then exit")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.components) - set(ALL_NAMES))
    if unknown:
        parser.error(
            f"unknown component(s) {', '.join(unknown)}; choose from {', '.join(ALL_NAMES)}"
        )
    try:
        if args.sync_wrappers:
            sync_wrappers(names=args.components)
            return 0
        names = tuple(args.components) or COMPONENT_NAMES
        results = ensure_components(names, force=names if args.force else ())
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing half-built was kept", file=sys.stderr)
        return 130
    for res in results.values():
        print(f"{res.name:<11} {res.version:<8} {res.status:<6} {res.seconds:8.1f} s  {res.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def ensure_kustomize(log: Log = progress) -> Path:
    """The kustomize binary, built from its module on first use."""
    return ensure_components(("kustomize",), log=log)["kustomize"].directory / "kustomize"


def cached_kustomize() -> Path | None:
    component = kustomize_component()
    directory = bin_root() / component.dir_name
    return directory / "kustomize" if proc.is_done(directory, _key(component), component.binaries) else None

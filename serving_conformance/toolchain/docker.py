"""A container engine for kind, set up only where none works, and kind's docker network.

The contract: where `docker info` answers, nothing is installed or reconfigured; the engine that
answers is used as it is. Otherwise (root, Debian) the suite sets one up, idempotently:

1. Debian's `docker.io`, unless a `dockerd` is already installed;
2. where this machine's capability bounding set lacks CAP_SYS_RESOURCE (every privileged container,
   so every kind node, then fails "unable to apply caps"), a runc wrapper that drops it, the
   project's own small file installed as `/usr/local/sbin/runc-drop-sys-resource-<content hash>`;
3. `/etc/docker/daemon.json`: docker's bridge and address pools moved into 198.19.0.0/16 (off the
   private ranges, and off the testbed's 198.18.0.0/16), and the wrapper as default runtime. A
   daemon.json the suite did not write (a note beside it records what it wrote) is never
   overwritten: the set-up stops and says what to merge;
4. dockerd started detached (there may be no init system to ask), recorded machine-wide under the
   cache's locks/ directory, and waited for until `docker info` answers.

`ensure_network` creates kind's network (`kind-sc`, IPv4 only, 198.19.32.0/20) when absent; kind is
pointed at it with KIND_EXPERIMENTAL_DOCKER_NETWORK.

    python -m serving_conformance.toolchain.docker           # engine (where none answers) + network
    python -m serving_conformance.toolchain.docker --stop    # stop the dockerd the suite started
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving_conformance.base import proc
from serving_conformance.base.cache import cache_dir
from serving_conformance.base.data import RUNC_WRAPPER
from serving_conformance.base.progress import progress
from serving_conformance.base.timeouts import Timeouts, from_environment_and
from serving_conformance.toolchain import debian

Log = Callable[[str], None]

# The address plan (all in 198.19.0.0/16; 198.18.0.0/16 is the local testbed's pod range).
DOCKER_BRIDGE_IP = "198.19.0.1/24"
DOCKER_ADDRESS_POOL = "198.19.16.0/20"
DOCKER_POOL_SIZE = 24
KIND_NETWORK = "kind-sc"
KIND_NETWORK_SUBNET = "198.19.32.0/20"
KIND_NETWORK_GATEWAY = "198.19.32.1"

WRAPPER_RUNTIME = "runc-drop-sys-resource"
CAP_SYS_RESOURCE = 24  # bit in /proc/<pid>/status CapBnd
DOCKERD = "dockerd"  # its record's name under the state directory
DOCKERD_STOP_GRACE_S = 60.0  # dockerd stops its containers first
OWNER_NOTE_SUFFIX = ".serving-conformance"


class EngineError(RuntimeError):
    """No container engine works here and the suite cannot set one up; the message says why."""


@dataclass(frozen=True)
class Host:
    """The machine the engine is set up on: where its files go and the programs it runs (the
    real ones by default; the self-tests point them at a temporary directory and fakes)."""

    daemon_json: Path = Path("/etc/docker/daemon.json")
    wrapper_dir: Path = Path("/usr/local/sbin")
    docker: str = "docker"
    dockerd: str = "dockerd"
    packages: tuple[str, ...] = ("docker.io",)
    state_dir: Path = field(default_factory=lambda: cache_dir("locks", "dockerd"))
    # None: read this machine's capability bounding set.
    lacks_sys_resource: bool | None = None

    @property
    def owner_note(self) -> Path:
        return self.daemon_json.with_name(self.daemon_json.name + OWNER_NOTE_SUFFIX)

    @property
    def lock(self) -> Path:
        return self.state_dir.parent / "dockerd.lock"


@dataclass(frozen=True)
class Engine:
    """What `ensure_engine` found or did."""

    version: str
    started: bool  # the suite started dockerd now
    pid: int | None = None
    changes: tuple[str, ...] = ()

    def summary(self) -> str:
        if not self.started and self.pid:
            return f"docker {self.version} answers (the dockerd the suite started earlier, pid {self.pid})"
        if not self.started:
            return f"docker {self.version} answers: used as it is"
        done = "; ".join(self.changes)
        return f"dockerd {self.version} started by the suite (pid {self.pid}){': ' + done if done else ''}"


def engine_version(docker: str = "docker", timeout: float = 30) -> str | None:
    """The server version `docker info` answers with, or None when no engine answers."""
    if shutil.which(docker) is None:
        return None
    result = proc.attempt([docker, "info", "--format", "{{.ServerVersion}}"], timeout=timeout)
    version = result.stdout.strip()
    return version if result.returncode == 0 and version else None


def bounding_set_lacks_sys_resource(status: Path = Path("/proc/self/status")) -> bool:
    for line in status.read_text().splitlines():
        if line.startswith("CapBnd:"):
            return not (int(line.split()[1], 16) >> CAP_SYS_RESOURCE) & 1
    return False


# --- the runc wrapper and daemon.json ----------------------------------------------------------


def wrapper_text(real_runc: str) -> str:
    python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else os.path.realpath(sys._base_executable)
    return f"#!{python}\n" + RUNC_WRAPPER.read_text().replace("@REAL_RUNC@", real_runc)


def wrapper_path(host: Host, text: str) -> Path:
    """Keyed by content: a changed wrapper is a new file, never an edit under a running dockerd."""
    return host.wrapper_dir / f"{WRAPPER_RUNTIME}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def install_wrapper(host: Host, text: str) -> bool:
    """Install the wrapper under its content-keyed name; True if it was not there yet."""
    path = wrapper_path(host, text)
    if path.is_file() and path.read_text() == text and os.access(path, os.X_OK):
        return False
    host.wrapper_dir.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_text(text)
    staged.chmod(0o755)
    os.replace(staged, path)
    return True


def daemon_config(wrapper: Path | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bip": DOCKER_BRIDGE_IP,
        "default-address-pools": [{"base": DOCKER_ADDRESS_POOL, "size": DOCKER_POOL_SIZE}],
    }
    if wrapper is not None:
        config["runtimes"] = {WRAPPER_RUNTIME: {"path": str(wrapper)}}
        config["default-runtime"] = WRAPPER_RUNTIME
    return config


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def written_by_suite(host: Host, data: bytes) -> bool:
    try:
        note = json.loads(host.owner_note.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(note, dict) and note.get("sha256") == _sha256(data)


def daemon_json_to_write(host: Host, config: dict[str, Any]) -> bytes | None:
    """What daemon.json must become (None: it already says this). Refuses to overwrite one the
    suite did not write."""
    wanted = (json.dumps(config, indent=2) + "\n").encode()
    path = host.daemon_json
    if not path.exists():
        return wanted
    current = path.read_bytes()
    try:
        if json.loads(current) == config:
            return None
    except ValueError:
        pass
    if not written_by_suite(host, current):
        raise EngineError(
            f"{path} exists and was not written by serving-conformance, so it is left as it is; "
            f"kind needs dockerd configured with {json.dumps(config)}. Merge those keys into it "
            "(or move it aside) and run this again"
        )
    return wanted


def write_daemon_json(host: Host, data: bytes) -> None:
    path = host.daemon_json
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_bytes(data)
    os.replace(staged, path)
    host.owner_note.write_text(json.dumps({
        "sha256": _sha256(data),
        "note": f"{path.name} was written by serving-conformance (python -m serving_conformance.toolchain.docker); "
                "it may rewrite it while this note matches its content",
    }, indent=2) + "\n")


# --- dockerd -----------------------------------------------------------------------------------


def _daemon_env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PATH", "")
    for directory in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if directory not in path.split(os.pathsep):
            path = f"{path}{os.pathsep}{directory}" if path else directory
    env["PATH"] = path
    return env


def _wait_for_engine(host: Host, record: proc.Record | None, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        version = engine_version(host.docker, timeout=max(5.0, min(30.0, deadline - time.monotonic())))
        if version:
            return version
        if record is not None and not record.alive():
            raise EngineError(f"dockerd (pid {record.pid}) exited before answering:\n"
                              f"{proc.log_tail(host.state_dir, DOCKERD)}")
        if time.monotonic() >= deadline:
            raise EngineError(f"dockerd did not answer `docker info` within {timeout:.0f}s; its log "
                              f"({proc.log_path(host.state_dir, DOCKERD)}):\n{proc.log_tail(host.state_dir, DOCKERD)}")
        time.sleep(0.5)


def _suite_dockerd(host: Host) -> int | None:
    record = proc.read_record(host.state_dir, DOCKERD)
    return record.pid if record is not None and record.alive() else None


def ensure_engine(log: Log = progress, host: Host | None = None, timeouts: Timeouts | None = None) -> Engine:
    """A container engine that answers `docker info`: the one found, else one set up here."""
    host = host or Host()
    timeouts = timeouts or from_environment_and(())
    found = engine_version(host.docker)
    if found:
        return Engine(found, started=False, pid=_suite_dockerd(host))
    with proc.file_lock(host.lock):
        found = engine_version(host.docker)  # another process may have started it meanwhile
        if found:
            return Engine(found, started=False, pid=_suite_dockerd(host))
        record = proc.read_record(host.state_dir, DOCKERD)
        if record is not None and record.alive():
            log(f"dockerd started earlier by the suite (pid {record.pid}) does not answer yet: waiting")
            return Engine(_wait_for_engine(host, record, timeouts.container_engine_start), True, record.pid)
        if os.geteuid() != 0:
            raise EngineError("no container engine answers here (`docker info` fails), and setting one up "
                              "needs root: run as root, or start your own engine")
        changes: list[str] = []
        if shutil.which(host.dockerd) is None:
            try:
                installed = debian.ensure_packages(host.packages, "a container engine for kind", log,
                                                   timeouts.package_install)
            except debian.PackageError as exc:
                raise EngineError(str(exc)) from exc
            changes += [f"installed {', '.join(installed)}"] if installed else []
        dockerd = shutil.which(host.dockerd)
        if dockerd is None:
            raise EngineError(f"`{host.dockerd}` is not on PATH after installing {', '.join(host.packages)}")
        lacks = bounding_set_lacks_sys_resource() if host.lacks_sys_resource is None else host.lacks_sys_resource
        runc_wrapper = None
        if lacks:
            real_runc = shutil.which("runc", path=_daemon_env()["PATH"])
            if real_runc is None:
                raise EngineError("runc is not installed (Debian: the runc package), dockerd needs it")
            runc_wrapper = wrapper_text(real_runc)
        # Decided before anything is written: a refusal leaves the machine as it was.
        config_bytes = daemon_json_to_write(
            host, daemon_config(wrapper_path(host, runc_wrapper) if runc_wrapper else None))
        if runc_wrapper is not None and install_wrapper(host, runc_wrapper):
            changes.append(f"installed {wrapper_path(host, runc_wrapper)} (drops CAP_SYS_RESOURCE, which this "
                           "machine lacks)")
        if config_bytes is not None:
            write_daemon_json(host, config_bytes)
            changes.append(f"wrote {host.daemon_json}")
        process = proc.spawn(DOCKERD, [dockerd, "--config-file", str(host.daemon_json)], host.state_dir,
                             env=_daemon_env())
        log(f"dockerd started (pid {process.pid}, log {proc.log_path(host.state_dir, DOCKERD)}); waiting for it")
        version = _wait_for_engine(host, proc.read_record(host.state_dir, DOCKERD),
                                   timeouts.container_engine_start)
        return Engine(version, started=True, pid=process.pid, changes=tuple(changes))


def stop_engine(host: Host | None = None) -> bool:
    """Stop the dockerd the suite started (by its record; never another); True if it ran."""
    host = host or Host()
    with proc.file_lock(host.lock):
        return proc.stop(host.state_dir, DOCKERD, grace=DOCKERD_STOP_GRACE_S, group=False)


# --- kind's network ----------------------------------------------------------------------------


def ensure_network(host: Host | None = None, timeouts: Timeouts | None = None) -> str:
    """kind's docker network, created when absent; one of that name on another subnet is refused."""
    host = host or Host()
    timeout = (timeouts or from_environment_and(())).docker_command
    found = proc.attempt([host.docker, "network", "inspect", KIND_NETWORK, "--format", "{{json .IPAM.Config}}"],
                         timeout=timeout)
    if found.returncode == 0:
        subnets = {c.get("Subnet") for c in json.loads(found.stdout or "[]") or []}
        if subnets != {KIND_NETWORK_SUBNET}:
            raise EngineError(f"docker network {KIND_NETWORK} exists with subnets {sorted(subnets)}, not "
                              f"{KIND_NETWORK_SUBNET}: remove it (`docker network rm {KIND_NETWORK}`)")
        return f"network {KIND_NETWORK} ({KIND_NETWORK_SUBNET}) exists"
    proc.run([host.docker, "network", "create", "--driver", "bridge", "--subnet", KIND_NETWORK_SUBNET,
              "--gateway", KIND_NETWORK_GATEWAY, "-o", "com.docker.network.bridge.enable_ip_masquerade=true",
              "-o", "com.docker.network.driver.mtu=1500", KIND_NETWORK],
             step=f"create docker network {KIND_NETWORK}", timeout=timeout, error=EngineError)
    return f"network {KIND_NETWORK} ({KIND_NETWORK_SUBNET}) created"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving_conformance.toolchain.docker",
                                     description="A container engine for kind, set up only where none answers.")
    parser.add_argument("--stop", action="store_true", help="stop the dockerd the suite started, then exit")
    args = parser.parse_args(argv)
    try:
        if args.stop:
            print("dockerd stopped" if stop_engine() else "no dockerd started by the suite runs")
            return 0
        print(ensure_engine().summary())
        print(ensure_network())
    except (EngineError, proc.CommandError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

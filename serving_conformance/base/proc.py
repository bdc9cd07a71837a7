"""The one process layer: every program the suite runs goes through here.

- short commands (`run`, `attempt`): argument lists, a timeout, the tail of the output on failure;
  long builds at a lower CPU priority (`niced`);
- detached processes recorded in a run directory (`spawn`, `stop`, `stop_all`): each in its own
  session, its PID and program written to `<run>/pids/<name>.pid`, stopped by record from any
  process (SIGTERM to the group, SIGKILL after a grace period), a record removed only once what it
  describes is gone, and a PID only signalled while its command line still names its program;
- orphans found by what they run (`processes_mentioning`, `stop_mentioning`): a run directory's
  path appears in the command lines of what it started, or in their environment (`RUN_ENV`, set by
  `spawn` and inherited by every descendant), so a run whose records are gone can still be cleaned up;
- locks (`file_lock`, `try_lock`), staged publication into the cache (`staging`, `publish`,
  `is_done`), log tails; ports and the addresses the suite may bind (`free_port`,
  `require_local_address`) live in net.py and are re-exported here.

Nothing here installs a signal handler: entry points decide what a signal means.

One module (about 420 lines): everything that starts, records, signals or waits for a process
is in one place, so that no other module spawns or kills anything its own way.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from serving_conformance.base.net import (  # noqa: F401 - re-exported: the one place callers import from
    LOCAL_ONLY_RANGES,
    accepts,
    free_port,
    free_ports,
    hostport,
    is_local_address,
    port_free,
    require_local_address,
    require_loopback,
)

# Set in the environment of every recorded process to its run directory; descendants inherit it.
RUN_ENV = "SERVING_CONFORMANCE_RUN_DIR"
STOP_GRACE_S = 10.0
KILL_WAIT_S = 5.0
TAIL_LINES = 40
STAMP = ".stamp.json"
POLL_S = 0.05


class CommandError(RuntimeError):
    """A command failed; the message names the step and ends with the tail of its output."""


# --- short commands -----------------------------------------------------------------------

# The CPU priority of long builds (Go compiles, debootstrap): a machine running them is often
# shared with test runs that measure time.
BUILD_NICENESS = 10


def niced(args: Sequence[str], niceness: int = BUILD_NICENESS) -> list[str]:
    """`args` run at a lower CPU priority through nice(1), where it exists."""
    nice = shutil.which("nice")
    return [nice, "-n", str(niceness), *args] if nice else list(args)


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def file_tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        return tail(path.read_text(errors="replace"), lines)
    except OSError:
        return "(no log)"


def _address_space(limit: int) -> Callable[[], None]:
    def apply() -> None:  # in the child, before exec: its whole address space, and its children's
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def attempt(
    args: Sequence[str], *, timeout: float | None = None, env: Mapping[str, str] | None = None,
    cwd: Path | None = None, input: str | None = None, memory: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command and hand back its result whatever its exit status; a program that cannot be
    started, or runs out of time, answers 127 or 124 with the reason on stderr. `memory` bounds
    the program's address space in bytes (it fails instead of growing past it)."""
    try:
        return subprocess.run(
            list(args), capture_output=True, text=True, errors="replace", timeout=timeout, check=False,
            env=dict(env) if env is not None else None, cwd=cwd, input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            preexec_fn=_address_space(memory) if memory is not None else None,
        )
    except OSError as exc:
        return subprocess.CompletedProcess(list(args), 127, "", f"cannot run {args[0]}: {exc}")
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return subprocess.CompletedProcess(list(args), 124, out, f"{args[0]} ran past {timeout:.0f}s and was killed")


def run(
    args: Sequence[str], *, step: str, timeout: float | None = None, env: Mapping[str, str] | None = None,
    cwd: Path | None = None, input: str | None = None, error: type[Exception] = CommandError,
) -> str:
    """Run a command and return its stdout; on failure raise `error` naming the step."""
    result = attempt(args, timeout=timeout, env=env, cwd=cwd, input=input)
    if result.returncode != 0:
        raise error(
            f"{step} failed (exit {result.returncode}): {' '.join(args)}\n"
            f"--- last lines of output ---\n{tail(result.stdout + result.stderr)}"
        )
    return result.stdout


# --- processes ------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def running(pid: int) -> bool:
    """True for a running process; False for a missing one or a zombie (it holds nothing)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _all_pids() -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def group_pids(pgid: int) -> list[int]:
    """Live processes of a process group."""
    result = []
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:  # state ppid pgrp ...
            result.append(pid)
    return result


def environ(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or another user's
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (e.g. a run directory's path), or whose
    environment names it as their run directory."""
    me, marker = os.getpid(), f"{RUN_ENV}={text}"
    return [pid for pid in _all_pids() if pid != me and running(pid)
            and (any(text in a for a in cmdline(pid)) or marker in environ(pid))]


def stop_mentioning(text: str, grace: float = STOP_GRACE_S) -> list[int]:
    """Stop every process `processes_mentioning(text)` finds; returns those still running."""
    pids = processes_mentioning(text)
    return kill_pids(pids, grace) if pids else []


def signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def terminate_group(pgid: int, grace: float = STOP_GRACE_S, child: subprocess.Popen[Any] | None = None) -> bool:
    """SIGTERM a process group, SIGKILL what is left after `grace`; True once none of it runs.
    `child`, when the group leader is our own child, is reaped so it does not linger as a zombie."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, KILL_WAIT_S)):
        signal_group(pgid, sig)
        deadline = time.monotonic() + wait
        while True:
            if child is not None:
                child.poll()
            if not group_pids(pgid):
                return True
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)  # a foreign process's exit can only be seen in /proc
    return False


def kill_pids(pids: Sequence[int], grace: float = STOP_GRACE_S) -> list[int]:
    """SIGTERM each process, SIGKILL survivors after `grace`; returns those still running."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, KILL_WAIT_S)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait
        while any(running(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        pids = [p for p in pids if running(p)]
        if not pids:
            break
    return list(pids)


# --- processes recorded in a run directory ---------------------------------------------------


@dataclass(frozen=True)
class Record:
    name: str
    pid: int
    program: str

    def alive(self) -> bool:
        """Still the process that was started: running, and its command line names the program
        (a reused PID is never signalled)."""
        return running(self.pid) and self.program in cmdline(self.pid)


def pid_dir(run_dir: Path) -> Path:
    path = run_dir / "pids"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_path(run_dir: Path, name: str) -> Path:
    return run_dir / "logs" / f"{name}.log"


def log_tail(run_dir: Path, name: str, lines: int = TAIL_LINES) -> str:
    return file_tail(log_path(run_dir, name), lines)


def read_record(run_dir: Path, name: str) -> Record | None:
    try:
        pid_text, program = (run_dir / "pids" / f"{name}.pid").read_text().split("\n")[:2]
        return Record(name, int(pid_text), program)
    except (OSError, ValueError):
        return None


def records(run_dir: Path) -> list[Record]:
    directory = run_dir / "pids"
    names = sorted(p.stem for p in directory.glob("*.pid")) if directory.is_dir() else []
    return [r for r in (read_record(run_dir, n) for n in names) if r is not None]


# prctl(PR_SET_PDEATHSIG): the kernel signals a process when the thread that started it ends.
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _terminated_with_starter() -> None:
    """In the child, before exec: SIGTERM once the starter is gone, even killed outright (SIGKILL
    leaves no teardown to stop it). Only a foreign call, resolved before the fork."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def spawn(
    name: str, args: Sequence[str], run_dir: Path, *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
    ends_with_starter: bool = False,
) -> subprocess.Popen[bytes]:
    """Start a detached process (its own session, so it can outlive the starter), log to
    `<run>/logs/<name>.log`, recorded in `<run>/pids/<name>.pid`, marked with RUN_ENV.
    `ends_with_starter`: a process that serves only this run ends with the process that started it
    (on Linux), whatever killed that."""
    log = log_path(run_dir, name)
    log.parent.mkdir(parents=True, exist_ok=True)
    environment = {**(env if env is not None else os.environ), RUN_ENV: str(run_dir)}
    with log.open("ab") as handle:
        process = subprocess.Popen(
            list(args), stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
            env=environment, cwd=cwd, start_new_session=True,
            preexec_fn=_terminated_with_starter if ends_with_starter else None,
        )
    (pid_dir(run_dir) / f"{name}.pid").write_text(f"{process.pid}\n{args[0]}\n")
    return process


def stop(run_dir: Path, name: str, grace: float = STOP_GRACE_S, group: bool = True) -> bool:
    """Stop a recorded process group; True if it was running. The record is removed only once the
    process is gone: a survivor stays recorded for the next sweep, and is raised about.
    `group=False` signals the recorded process alone (a daemon that stops its own children in
    order, as dockerd does its containerd), then waits for its group to end."""
    record = read_record(run_dir, name)
    if record is None:
        return False
    was_running = record.alive()
    if was_running and not group:
        kill_pids([record.pid], grace)
        deadline = time.monotonic() + grace
        while group_pids(record.pid) and time.monotonic() < deadline:
            time.sleep(POLL_S)
    if was_running and not terminate_group(record.pid, grace):
        if record.alive():
            raise CommandError(f"{name} (pid {record.pid}) still runs after SIGKILL; its record is kept")
    (run_dir / "pids" / f"{name}.pid").unlink(missing_ok=True)
    return was_running


def stop_all(run_dir: Path, names: Sequence[str], grace: float = STOP_GRACE_S) -> list[str]:
    """Stop each recorded process, all of them even when one survives; the names of those that
    were running. Raises CommandError naming the survivors (their records are kept)."""
    stopped, survivors = [], []
    for name in names:
        try:
            if stop(run_dir, name, grace):
                stopped.append(name)
        except CommandError as exc:
            survivors.append(str(exc))
    if survivors:
        raise CommandError("; ".join(survivors))
    return stopped


# --- locks ------------------------------------------------------------------------------------


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing), waiting for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def try_lock(path: Path, holder: str) -> IO[str] | str:
    """Take an exclusive lock without waiting: the open handle (closing it releases the lock, and
    so does the process ending), or, when another process holds it, what that holder wrote."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held for as long as the lock
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        text = handle.read().strip() or "holder unknown"
        handle.close()
        return text
    handle.seek(0)
    handle.truncate()
    handle.write(f"{holder}\n")
    handle.flush()
    return handle


# --- staged publication into the cache --------------------------------------------------------


def is_done(directory: Path, key: str, executables: Sequence[str] = ()) -> bool:
    """A published directory whose stamp carries `key` and whose executables are all there."""
    try:
        recorded = json.loads((directory / STAMP).read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        return False
    return recorded == key and all(os.access(directory / name, os.X_OK) for name in executables)


def stamp(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / STAMP).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def staging(final: Path) -> Path:
    """A fresh staging directory beside `final`; what killed builds left there is removed first
    (call with the lock of `final` held)."""
    for leftover in final.parent.glob(f".{final.name}.*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))


def publish(staged: Path, final: Path, key: str, extra: Mapping[str, Any] | None = None) -> Path:
    """Stamp a finished staging directory and move it into place in one rename."""
    (staged / STAMP).write_text(json.dumps({"key": key, **dict(extra or {})}, indent=2) + "\n")
    staged.chmod(0o755)  # mkdtemp made it private
    if final.exists():
        shutil.rmtree(final)  # stale: another key
    os.rename(staged, final)
    return final

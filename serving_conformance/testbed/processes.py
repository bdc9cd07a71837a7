"""Detached testbed processes, recorded by PID in the run directory and stopped by PID.

Processes are started in their own session so that an xdist worker that started them can exit;
whoever tears down later (the controller) stops them through `<run>/pids/<name>.pid`. A PID is
only signalled while its command line still names the program that was started, so a reused PID
is never hit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

STOP_GRACE_S = 10.0


def pid_dir(run_dir: Path) -> Path:
    path = run_dir / "pids"
    path.mkdir(parents=True, exist_ok=True)
    return path


def spawn(
    name: str, args: Sequence[str], run_dir: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen:
    log = run_dir / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        process = subprocess.Popen(
            list(args), stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True,
        )
    (pid_dir(run_dir) / f"{name}.pid").write_text(f"{process.pid}\n{args[0]}\n")
    return process


def log_tail(run_dir: Path, name: str, lines: int = 40) -> str:
    path = run_dir / "logs" / f"{name}.log"
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def running(pid: int) -> bool:
    """True for a running process; False for a missing one or a zombie (it holds nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _alive(pid: int, program: str) -> bool:
    return running(pid) and program in cmdline(pid)


def stop(run_dir: Path, name: str, grace: float = STOP_GRACE_S) -> bool:
    """SIGTERM the recorded process group, SIGKILL after `grace`; True if it was running."""
    record = pid_dir(run_dir) / f"{name}.pid"
    try:
        pid_text, program = record.read_text().split("\n")[:2]
        pid = int(pid_text)
    except (OSError, ValueError):
        return False
    if not _alive(pid, program):
        record.unlink(missing_ok=True)
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _alive(pid, program):
            time.sleep(0.1)  # nothing to watch for a foreign process's exit but /proc
        if not _alive(pid, program):
            break
    record.unlink(missing_ok=True)
    return True


def stop_all(run_dir: Path, names: Sequence[str]) -> list[str]:
    return [name for name in names if stop(run_dir, name)]

"""The testbeds started on this machine, recorded outside their run directories.

A run killed outright may also lose its run directory (removed by a sweep or a teardown that was
itself cut short) while its processes still run, holding 127.0.0.1:80 and the pod route. An entry
here outlives the run directory: the next testbed finds the run's processes by what they run
(command lines and environments name the run directory) and removes the entry only once they are
gone.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from serving_conformance.base.cache import cache_dir


def _entry(run_dir: Path) -> Path:
    return cache_dir("runs") / f"{run_dir.name}.json"


@dataclass(frozen=True)
class Entry:
    run_dir: Path
    # The run added the machine's pod route (so it is its to remove).
    route: bool


def record(run_dir: Path, route: bool = False) -> None:
    """Note that a testbed is being started from `run_dir` (before any of it starts), and then
    that it added the pod route."""
    data = {"run_dir": str(run_dir), "pid": os.getpid(), "started": time.time(), "route": route}
    _entry(run_dir).write_text(json.dumps(data))


def forget(run_dir: Path) -> None:
    """Only once nothing the run started is left."""
    _entry(run_dir).unlink(missing_ok=True)


def recorded() -> list[Entry]:
    """The testbeds recorded here (their run directories may or may not still exist)."""
    found = []
    for path in sorted(cache_dir("runs").glob("*.json")):
        try:
            data = json.loads(path.read_text())
            found.append(Entry(Path(data["run_dir"]), bool(data.get("route"))))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # half-written by a killed run: the glob of run directories still finds it
    return found

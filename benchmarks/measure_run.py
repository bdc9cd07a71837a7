"""Wall time and peak memory of a whole command (e.g. a full local conformance run), and the
share of it spent waiting for vLLM to start in the testbed's pods.

    python benchmarks/measure_run.py -- python -m pytest conformance -m cpu --cluster local --keep-logs

Memory is sampled from /proc/meminfo (MemTotal - MemAvailable) every 0.5 s, minus the level at
start: the testbed's processes are detached from the command, so per-process accounting would miss
them. With --keep-logs the node agent's log gives each pod's vLLM launch and ready times; their
union is the time spent waiting on vLLM start-up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import subprocess
import sys
import threading
import time
from pathlib import Path


def used_mib() -> float:
    values = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        values[key] = int(rest.split()[0])
    return (values["MemTotal"] - values["MemAvailable"]) / 1024


def engine_wait_seconds(agent_log: Path) -> tuple[float, int]:
    """Union of [launch, ready] intervals of the pods' vLLM servers, and how many there were."""
    stamp = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"
    intervals = []
    for line in agent_log.read_text().splitlines():
        match = re.match(stamp + r" \S+: vLLM ready at \S+ in ([\d.]+)s", line)
        if match:
            end = dt.datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).timestamp()
            intervals.append((end - float(match.group(2)), end))
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start
    return total, len(intervals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=Path("conformance-artifacts"))
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    baseline = used_mib()
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            peak[0] = max(peak[0], used_mib())

    threading.Thread(target=sample, daemon=True).start()
    started = time.monotonic()
    code = subprocess.run(command, check=False).returncode
    wall = time.monotonic() - started
    done.set()
    print(f"exit {code}; wall {wall:.1f}s; peak memory above start {peak[0] - baseline:.0f} MiB "
          f"(machine total used at peak {peak[0]:.0f} MiB)")
    agent_log = args.artifacts / "testbed-logs" / "node-agent.log"
    if agent_log.exists():
        waiting, servers = engine_wait_seconds(agent_log)
        print(f"{servers} pod vLLM start(s); waiting on vLLM start-up {waiting:.1f}s = {waiting / wall:.0%} of the wall time; "
              f"the rest ({wall - waiting:.1f}s, {1 - waiting / wall:.0%}) is the suite, the testbed and the checks")
    sys.exit(code)


if __name__ == "__main__":
    main()

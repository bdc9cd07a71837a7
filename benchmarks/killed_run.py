"""What a killed testbed run leaves, and whether the next run cleans it up.

Runs `pytest -m cpu --cluster local` under `timeout` (SIGTERM after --after seconds and, with
--kill-after, SIGKILL that much later, as CI cancels do), reports what is left (processes naming
the run directory, listeners on 127.0.0.1:80, the pod route, the run directory, its registry
entry), optionally removes the run directory by hand (the worst case: records gone, processes
running), runs the next testbed run, and reports what is left after it.

    python benchmarks/killed_run.py --after 60 --kill-after 5 --remove-run-dir
    python benchmarks/killed_run.py --after 60            # SIGTERM only: measures teardown
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from serving_conformance.base import proc
from serving_conformance.base.data import SUITE
from serving_conformance.providers.local import network, registry

PYTEST = [sys.executable, "-m", "pytest", str(SUITE), "-p", "no:cacheprovider", "--cluster", "local"]
NEXT_RUN = [*PYTEST, "-m", "cpu", "--local-pods", "simulated", "-k", "isvc_ready"]


def leftovers(run_dir: Path) -> dict[str, object]:
    listeners = proc.attempt(["ss", "-ltnpH", "sport = :80"], timeout=10).stdout.strip()
    return {
        "processes naming the run dir": [" ".join(proc.cmdline(p))[:100] for p in proc.processes_mentioning(str(run_dir))],
        "listeners on :80": listeners.splitlines(),
        "pod route": network.route_present(),
        "run dir exists": run_dir.exists(),
        "registry entry": any(e.run_dir == run_dir for e in registry.recorded()),
    }


def show(title: str, found: dict[str, object]) -> None:
    print(f"--- {title}")
    for key, value in found.items():
        print(f"  {key}: {value}")


def timed(args: list[str]) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    return time.monotonic() - started, result.stdout + result.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--after", type=float, default=60, help="SIGTERM after this many seconds")
    parser.add_argument("--kill-after", type=float, default=None, help="then SIGKILL this many seconds later")
    parser.add_argument("--remove-run-dir", action="store_true", help="remove the killed run's directory by hand")
    parser.add_argument("--output", type=Path, default=None, help="write both runs' full output here")
    args = parser.parse_args()
    killer = ["timeout", *(["-k", str(args.kill_after)] if args.kill_after else []), str(args.after)]
    wall, output = timed([*killer, *PYTEST, "-m", "cpu"])
    if args.output is not None:
        args.output.write_text(output)
    # Only the line this run's own testbed prints: a refusal names the run that holds the machine.
    match = re.search(r"node agent ready in [0-9.]+s \(run dir (\S+?)\)", output)
    if match is None or "another local testbed runs" in output:
        print(output[-3000:])
        print("this run started no testbed (another one runs on this machine?): nothing measured")
        return 1
    run_dir = Path(match.group(1))
    print(f"killed run: {wall:.1f}s wall; SIGTERM at {args.after:.0f}s, so {wall - args.after:.1f}s from SIGTERM to exit")
    for line in output.splitlines():
        if "teardown" in line or "testbed stopped" in line or "did not fully stop" in line:
            print(f"  {line.strip()}")
    show("left after the killed run", leftovers(run_dir))
    if args.remove_run_dir and run_dir.exists():
        shutil.rmtree(run_dir)
        print(f"removed {run_dir} by hand (its processes keep running)")
    wall, output = timed(NEXT_RUN)
    if args.output is not None:
        args.output.with_suffix(".next" + args.output.suffix).write_text(output)
    print(f"next run: {wall:.1f}s wall")
    for line in output.splitlines():
        if "earlier run" in line or "pod route" in line or "could not fully stop" in line or "teardown took" in line:
            print(f"  {line.strip()}")
    show("left after the next run", leftovers(run_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())

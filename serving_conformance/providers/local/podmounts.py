"""Run a command with a pod's emptyDir volumes bound at their mount paths, privately.

Started under `unshare --mount --propagation private`, so the bind mounts exist only for the
command: `python -m serving_conformance.providers.local.podmounts SRC:DST [SRC:DST ...] -- CMD ARGS...`.
This is how a simulated pod's container sees `/mnt/models` exactly where KServe's modelcar puts it.
"""

from __future__ import annotations

import os
import subprocess
import sys


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("usage: podmounts SRC:DST ... -- CMD ...", file=sys.stderr)
        return 2
    split = argv.index("--")
    mounts, command = argv[:split], argv[split + 1 :]
    for mount in mounts:
        source, _, target = mount.partition(":")
        result = subprocess.run(["mount", "--bind", source, target], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            print(f"podmounts: cannot bind {source} at {target}: {result.stderr.strip()}", file=sys.stderr)
            return 1
    os.execvp(command[0], command)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

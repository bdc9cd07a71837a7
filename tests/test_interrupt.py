"""SIGTERM mid-run: the run's namespaces, the testbed it started and its processes are all removed."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving_conformance.base.data import SUITE

REPO = Path(__file__).resolve().parent.parent


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if text in cmdline and state != "Z":
                found.append(cmdline)
    return found


@pytest.mark.testbed
def test_sigterm_mid_run_removes_everything_the_run_created(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", str(SUITE), "-m", "cpu", "--cluster", "local",
         "--local-pods", "simulated", "-k", "isvc_ready", "-p", "no:cacheprovider",
         "--artifacts-dir", str(tmp_path / "artifacts")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines, run_dir = [], None
    deadline = time.monotonic() + 600
    for line in process.stdout:
        lines.append(line)
        match = re.search(r"run dir (\S+)\)", line)
        if match:
            run_dir = match.group(1)
        if "waiting for InferenceService" in line:
            break  # the testbed is up, the namespace exists, the workload is applied
        assert time.monotonic() < deadline, "".join(lines)
    assert run_dir, "".join(lines)
    process.send_signal(signal.SIGTERM)
    output = "".join(lines) + process.stdout.read()
    assert process.wait(timeout=300) != 0
    assert "the run's objects go with the local cluster" in output, output
    assert "testbed stopped" in output and "removed local cluster" in output, output
    assert "teardown took" in output and "incomplete" not in output, output
    time.sleep(1)  # let the last children be reaped
    assert processes_mentioning(run_dir) == [], output
    assert not Path(run_dir).exists()

"""Hostile input through kustomize: every file a kustomization lists passes the bounded reader
before kustomize reads it, and kustomize itself runs under a time and a memory bound."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from serving_conformance.base import proc
from serving_conformance.base.data import SUITE


def bomb(levels: int = 11) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for name in "bcdefghijklmnop"[:levels]:
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]")
        previous = name
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n" + "\n".join("  " + x for x in lines) + "\n"


def run_measured(command: list[str], log: Path, timeout: float) -> tuple[int, float, int]:
    """(exit code, seconds, peak KiB) of this one run and what it waited for: os.wait4's usage is
    the child's own (RUSAGE_CHILDREN keeps the largest child this process ever had)."""
    started = time.monotonic()
    with log.open("w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        guard = threading.Timer(timeout, child.kill)
        guard.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            guard.cancel()
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, time.monotonic() - started, usage.ru_maxrss


def test_an_alias_bomb_a_kustomization_lists_fails_fast_and_small(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources:\n- bomb.yaml\n")
    (tmp_path / "bomb.yaml").write_text(bomb())
    assert len(bomb()) < 1024
    code, elapsed, peak_kib = run_measured([sys.executable, "-m", "pytest", str(SUITE), "-m", "static", "-p",
                                            "no:cacheprovider", f"--manifests-dir={tmp_path}", "-q"],
                                           tmp_path / "run.log", timeout=120)
    stdout = (tmp_path / "run.log").read_text()
    assert code == 1, stdout[-2000:]
    assert "expands to more than 1,000,000 nodes once its" in stdout and "not rendered" in stdout
    assert elapsed < 30 and peak_kib < 1024 * 1024, (elapsed, peak_kib)


def test_the_measured_peak_is_the_runs_own():
    """The control: a run that holds 1.2 GiB is measured as such, and the next small one is not."""
    big = [sys.executable, "-c", "x = bytearray(1200 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096])"]
    assert run_measured(big, Path("/dev/null"), timeout=60)[2] > 1024 * 1024
    assert run_measured([sys.executable, "-c", "pass"], Path("/dev/null"), timeout=60)[2] < 200 * 1024


def test_a_program_past_its_memory_bound_fails_instead_of_growing():
    result = proc.attempt([sys.executable, "-c", "x = bytearray(800 * 1024 * 1024)"], memory=300 * 1024 * 1024,
                          timeout=60)
    assert result.returncode != 0 and "MemoryError" in result.stderr


def test_kustomize_out_of_memory_says_so_not_a_stack_dump(tmp_path):
    """Go writes "fatal error: out of memory" first and every goroutine's stack after it: the
    failure names the suite's bound, whatever follows; any other failure keeps kustomize's cause."""
    import pytest

    from serving_conformance.manifests.kustomize import Kustomization, RenderError, render

    root = Kustomization(tmp_path / "kustomization.yaml", {})
    (tmp_path / "kustomization.yaml").write_text("resources: []\n")
    dump = "fatal error: out of memory\\n" + "runtime.gopark(0xc000081f78?)\\n\\truntime/proc.go:424\\n" * 40
    fake = [sys.executable, "-c", f"import sys; sys.stderr.write('{dump}'); sys.exit(2)"]
    with pytest.raises(RenderError, match=r"needed more than the suite's 4096 MiB of address space") as caught:
        list(render(root, fake))
    assert "gopark" not in str(caught.value)
    other = [sys.executable, "-c", "import sys; sys.stderr.write('Error: accumulating resources: missing.yaml'); sys.exit(1)"]
    with pytest.raises(RenderError, match="accumulating resources: missing.yaml"):
        list(render(root, other))

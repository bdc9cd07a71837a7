"""Hostile input through kustomize: every file a kustomization lists passes the bounded reader
before kustomize reads it, and kustomize itself runs under a time and a memory bound."""

from __future__ import annotations

import subprocess
import sys
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


# A small process of its own starts the run and reports its children's peak: a child forked from
# the test process itself would count the test process's pages too (ru_maxrss keeps them past exec).
_MEASURER = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
             "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
             "sys.exit(code)")


def run_measured(command: list[str], where: Path, timeout: float) -> tuple[int, float, int, str]:
    """(exit code, seconds, peak KiB, output) of this one run and what it waited for."""
    peak = where / "peak-kib"
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", _MEASURER, str(peak), *command], capture_output=True, text=True,
                            timeout=timeout)
    return result.returncode, time.monotonic() - started, int(peak.read_text()), result.stdout + result.stderr


def test_an_alias_bomb_a_kustomization_lists_fails_fast_and_small(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources:\n- bomb.yaml\n")
    (tmp_path / "bomb.yaml").write_text(bomb())
    assert len(bomb()) < 1024
    code, elapsed, peak_kib, output = run_measured([sys.executable, "-m", "pytest", str(SUITE), "-m", "static", "-p",
                                                    "no:cacheprovider", f"--manifests-dir={tmp_path}", "-q"],
                                                   tmp_path, timeout=120)
    assert code == 1, output[-2000:]
    assert "expands to more than 1,000,000 nodes once its" in output and "not rendered" in output
    assert elapsed < 30 and peak_kib < 1024 * 1024, (elapsed, peak_kib)


def test_the_measured_peak_is_the_runs_own(tmp_path):
    """The control: a run that holds 1.2 GiB is measured as such, and the next small one is not,
    however large this test process has grown (here: 1.2 GiB more while it measures)."""
    big = [sys.executable, "-c", "x = bytearray(1200 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096])"]
    assert run_measured(big, tmp_path, timeout=60)[2] > 1024 * 1024
    ballast = bytearray(1200 * 1024 * 1024)
    ballast[::4096] = b"1" * len(ballast[::4096])
    assert run_measured([sys.executable, "-c", "pass"], tmp_path, timeout=60)[2] < 200 * 1024
    del ballast


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

"""Hostile input through kustomize: every file a kustomization lists passes the bounded reader
before kustomize reads it, and kustomize itself runs under a time and a memory bound."""

from __future__ import annotations

import resource
import subprocess
import sys
import time

from serving_conformance.base import proc
from serving_conformance.base.data import SUITE


def bomb(levels: int = 11) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for name in "bcdefghijklmnop"[:levels]:
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]")
        previous = name
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n" + "\n".join("  " + x for x in lines) + "\n"


def test_an_alias_bomb_a_kustomization_lists_fails_fast_and_small(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources:\n- bomb.yaml\n")
    (tmp_path / "bomb.yaml").write_text(bomb())
    assert len(bomb()) < 1024
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run([sys.executable, "-m", "pytest", str(SUITE), "-m", "static", "-p", "no:cacheprovider",
                             f"--manifests-dir={tmp_path}", "-q"], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert result.returncode == 1, result.stdout[-2000:]
    assert "expands to more than 1,000,000 nodes once its" in result.stdout and "not rendered" in result.stdout
    assert elapsed < 30 and max(peak_kib, before) < 1024 * 1024, (elapsed, peak_kib)


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

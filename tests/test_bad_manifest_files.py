"""A manifests directory with loops, FIFOs, devices, unreadable and foreign entries: one problem
each, never an INTERNALERROR and never a hang."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from serving_conformance.base.data import SUITE
from serving_conformance.base.limits import MAX_WALK_DEPTH
from serving_conformance.manifests import files
from serving_conformance.manifests.load import load_manifests

SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n"


def service(path: Path, name: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SERVICE.format(name=name))
    return path


def problems_by_name(root: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for problem in load_manifests(root).problems:
        found.setdefault(problem.path.name, []).append(problem.message)
    return found


def test_symlink_loops_are_one_problem_each(tmp_path):
    service(tmp_path / "ok.yaml", "ok")
    (tmp_path / "a.yaml").symlink_to("b.yaml")
    (tmp_path / "b.yaml").symlink_to("a.yaml")
    (tmp_path / "self.yaml").symlink_to("self.yaml")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to("..")  # a directory loop
    (tmp_path / "sub" / "here").symlink_to(".")
    manifests = load_manifests(tmp_path)
    assert [r.name for r in manifests.resources] == ["ok"]
    found = problems_by_name(tmp_path)
    assert found["a.yaml"] == [files.LOOP] and found["b.yaml"] == [files.LOOP] and found["self.yaml"] == [files.LOOP]
    assert found["up"] == [f"is a symlink loop (back to {tmp_path.resolve()}): not followed"]
    assert found["here"] == [f"is a symlink loop (back to {(tmp_path / 'sub').resolve()}): not followed"]
    assert len(manifests.problems) == 5


def test_links_inside_the_tree_are_followed_once_and_links_outside_refused(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    service(root / "real" / "svc.yaml", "inside")
    (root / "alias").symlink_to("real")  # the same directory again: read once
    (root / "linked.yaml").symlink_to(root / "real" / "svc.yaml")
    service(outside / "foreign.yaml", "foreign")
    (outside / "LICENSE").write_text("text")
    (root / "elsewhere").symlink_to(outside)
    (root / "foreign.yaml").symlink_to(outside / "foreign.yaml")
    (root / "LICENSE").symlink_to(outside / "LICENSE")  # not YAML: not read, not a problem
    manifests = load_manifests(root)
    assert [r.name for r in manifests.resources] == ["inside"]
    found = problems_by_name(root)
    assert set(found) == {"elsewhere", "foreign.yaml"}, found
    assert all("outside the manifests directories: not followed" in m[0] for m in found.values())
    # Given as a manifests directory itself, the outside directory is read.
    assert {r.name for r in load_manifests([root, outside]).resources} == {"inside", "foreign"}


def test_fifos_and_devices_are_not_read(tmp_path):
    service(tmp_path / "ok.yaml", "ok")
    os.mkfifo(tmp_path / "pipe.yaml")
    devices = []
    try:
        os.mknod(tmp_path / "null.yaml", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        devices.append("null.yaml")
    except PermissionError:
        pass  # not root: the FIFO alone shows the rule
    # In a subprocess with a deadline: reading a FIFO without a writer would block forever.
    code = textwrap.dedent(f"""
        from pathlib import Path
        from serving_conformance.manifests.load import load_manifests
        for p in load_manifests(Path({str(tmp_path)!r})).problems:
            print(p.path.name, "|", p.message)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    lines = sorted(result.stdout.splitlines())
    assert "pipe.yaml | is a FIFO (reading it could block forever): not read" in lines
    for device in devices:
        assert f"{device} | is a character device: not read" in lines
    assert len(lines) == 1 + len(devices)


def test_a_fifo_given_as_the_manifests_dir_is_one_problem(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    [problem] = load_manifests(tmp_path / "pipe").problems
    assert "FIFO" in problem.message


def test_unreadable_directories_and_files_are_one_problem_each(tmp_path, monkeypatch):
    service(tmp_path / "ok.yaml", "ok")
    service(tmp_path / "locked" / "x.yaml", "x")
    service(tmp_path / "secret.yaml", "secret")
    # As root nothing is unreadable; fail the calls the walk makes as a permission check would.
    real_scandir, real_open = os.scandir, os.open

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    def open_(path, flags, *args, **kwargs):
        if str(path).endswith("secret.yaml"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "open", open_)
    found = problems_by_name(tmp_path)
    assert found == {"locked": ["unreadable: Permission denied"], "secret.yaml": ["unreadable: Permission denied"]}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_entries_for_real(tmp_path):
    service(tmp_path / "locked" / "x.yaml", "x")
    service(tmp_path / "secret.yaml", "secret")
    (tmp_path / "locked").chmod(0)
    (tmp_path / "secret.yaml").chmod(0)
    try:
        found = problems_by_name(tmp_path)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert set(found) == {"locked", "secret.yaml"}


def test_a_too_deep_tree_is_one_problem(tmp_path):
    deep = tmp_path
    for _ in range(MAX_WALK_DEPTH + 5):
        deep = deep / "d"
    service(deep / "x.yaml", "x")
    service(tmp_path / "ok.yaml", "ok")
    manifests = load_manifests(tmp_path)
    assert [r.name for r in manifests.resources] == ["ok"]
    [problem] = manifests.problems
    assert f"more than {MAX_WALK_DEPTH} directories deep" in problem.message


def test_broken_links_and_bad_bytes(tmp_path):
    (tmp_path / "gone.yaml").symlink_to("nowhere.yaml")
    (tmp_path / "gone-dir").symlink_to("nowhere")  # not YAML by name: nothing to report
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    found = problems_by_name(tmp_path)
    assert found == {
        "gone.yaml": ["is a broken symlink (to nowhere.yaml)"],
        "latin1.yaml": ["is not UTF-8 text: byte 0xe9 at line 1 (offset 9)"],
    }


def test_a_kustomization_listing_a_loop_is_a_problem_of_the_kustomization(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - loop.yaml\n")
    (tmp_path / "loop.yaml").symlink_to("loop.yaml")
    [problem] = load_manifests(tmp_path).problems
    assert problem.path.name == "kustomization.yaml" and "which is a symlink loop" in problem.message


def test_the_static_profile_over_a_hostile_directory_fails_one_test_per_bad_entry(pytester, tmp_path):
    root = tmp_path / "manifests"
    service(root / "ok.yaml", "ok")
    (root / "loop.yaml").symlink_to("loop.yaml")
    (root / "sub").mkdir()
    (root / "sub" / "up").symlink_to("..")
    os.mkfifo(root / "pipe.yaml")
    (root / "bytes.yaml").write_bytes(b"\xff\xfe")
    result = pytester.runpytest(str(SUITE / "static" / "test_manifests_parse.py"), "--manifests-dir", str(root),
                                "-p", "no:cacheprovider")
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output and result.ret == 1, output
    result.assert_outcomes(passed=1, failed=4)

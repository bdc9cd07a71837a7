"""Killed runs never poison later ones: what a run leaves is found by its records, by what its
processes run (command line or environment naming the run directory), and through the machine's
registry even when its run directory is gone; a record goes only once what it describes is gone.

No testbed is started: fake processes name fake run directories, on a private cache and temp
directory; the pod route is never touched (its functions are replaced)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from serving_conformance.base import proc
from serving_conformance.platform.session import ClusterSession
from serving_conformance.providers.local import network, registry
from serving_conformance.providers.local.provider import LocalProvider

from .conftest import base_settings

SLEEP = [sys.executable, "-c", "import sys, time; time.sleep(120)"]


@pytest.fixture
def route(monkeypatch: pytest.MonkeyPatch) -> dict[str, int | bool]:
    """A fake pod route: the machine's real one (maybe another run's) is never touched."""
    state: dict[str, int | bool] = {"present": False, "removed": 0}

    def remove() -> None:
        state["removed"] = int(state["removed"]) + 1
        state["present"] = False

    monkeypatch.setattr(network, "route_present", lambda: bool(state["present"]))
    monkeypatch.setattr(network, "remove_pod_route", remove)
    monkeypatch.setattr(network, "add_pod_route", lambda: pytest.fail("the test must not add the route"))
    return state


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, route: dict) -> Path:
    """A private cache (lock, registry) and temp directory (run directories)."""
    monkeypatch.setenv("SERVING_CONFORMANCE_CACHE", str(tmp_path / "cache"))
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


@pytest.fixture
def started() -> list[subprocess.Popen]:
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def detached(args: list[str], started: list[subprocess.Popen], env: dict[str, str] | None = None) -> subprocess.Popen:
    process = subprocess.Popen(args, start_new_session=True, env=env)
    started.append(process)
    return process


def gone(process: subprocess.Popen, within: float = 20) -> bool:
    deadline = time.monotonic() + within
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return process.poll() is not None


def spawned(name: str, run_dir: Path, started: list[subprocess.Popen]) -> subprocess.Popen:
    """A recorded process, once it runs its program (until its exec, /proc shows the parent's)."""
    process = proc.spawn(name, [*SLEEP, name], run_dir)
    started.append(process)
    deadline = time.monotonic() + 10
    while name not in proc.cmdline(process.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return process


def provider(run_dir: Path, said: list[str]) -> LocalProvider:
    return LocalProvider(base_settings(cluster="local"), run_dir, said.append)


def test_processes_naming_a_deleted_run_dir_are_stopped_by_the_next_sweep(machine, route, started):
    dead = machine / "serving-conformance-gone0001"  # its directory was removed; processes remain
    registry.record(dead, route=True)
    route["present"] = True
    by_command_line = detached([*SLEEP, f"--config={dead}/traefik.yaml"], started)
    by_environment = detached(SLEEP, started, env={**os.environ, proc.RUN_ENV: str(dead)})
    unrelated = detached([*SLEEP, f"--config={machine}/serving-conformance-other9/x"], started)
    said: list[str] = []
    ours = machine / "serving-conformance-live0002"
    ours.mkdir()
    provider(ours, said).sweep_stale()
    assert gone(by_command_line) and gone(by_environment), said
    assert unrelated.poll() is None
    assert registry.recorded() == []
    assert route["removed"] == 1 and any("removed the pod route" in line for line in said), said


def test_a_route_is_removed_only_for_a_run_that_added_it(machine, route, started):
    registry.record(machine / "serving-conformance-gone0006", route=False)
    route["present"] = True  # someone else's
    ours = machine / "serving-conformance-live0007"
    ours.mkdir()
    provider(ours, []).sweep_stale()
    assert route["removed"] == 0 and registry.recorded() == []


def test_a_run_dir_and_its_entry_are_kept_while_its_processes_survive(machine, started, monkeypatch):
    stale = machine / "serving-conformance-dead0003"
    (stale / "pids").mkdir(parents=True)
    registry.record(stale)
    survivor = detached([*SLEEP, str(stale)], started)
    real_kill_pids = proc.kill_pids
    monkeypatch.setattr(proc, "kill_pids", lambda pids, grace=0: list(pids))  # as if SIGKILL did nothing
    said: list[str] = []
    ours = machine / "serving-conformance-live0004"
    ours.mkdir()
    provider(ours, said).sweep_stale()
    assert survivor.poll() is None
    assert stale.is_dir() and [e.run_dir for e in registry.recorded()] == [stale]
    assert any("its records are kept" in line and str(survivor.pid) in line for line in said), said
    monkeypatch.setattr(proc, "kill_pids", real_kill_pids)
    provider(ours, said).sweep_stale()  # the next run, once the process can be stopped
    assert gone(survivor) and not stale.exists() and registry.recorded() == []


def test_a_record_is_kept_when_its_process_survives(tmp_path, started, monkeypatch):
    process = spawned("stubborn", tmp_path, started)
    monkeypatch.setattr(proc, "terminate_group", lambda pgid, grace=0, child=None: False)
    with pytest.raises(proc.CommandError, match="still runs after SIGKILL; its record is kept"):
        proc.stop(tmp_path, "stubborn", grace=0.1)
    assert proc.read_record(tmp_path, "stubborn") is not None
    monkeypatch.undo()
    assert proc.stop(tmp_path, "stubborn", grace=5) is True
    assert proc.read_record(tmp_path, "stubborn") is None and gone(process)


def test_stop_all_stops_every_process_even_after_a_survivor(tmp_path, started, monkeypatch):
    first, second = (spawned(name, tmp_path, started) for name in ("first", "second"))
    real = proc.terminate_group
    monkeypatch.setattr(proc, "terminate_group",
                        lambda pgid, grace=0, child=None: False if pgid == first.pid else real(pgid, grace, child))
    with pytest.raises(proc.CommandError, match="first"):
        proc.stop_all(tmp_path, ["first", "second"], grace=5)
    assert gone(second) and proc.read_record(tmp_path, "second") is None
    assert proc.read_record(tmp_path, "first") is not None


def test_spawned_processes_carry_their_run_dir_in_their_environment(tmp_path, started):
    child = [sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
             "'import time; time.sleep(120)']); time.sleep(120)"]
    process = proc.spawn("parent", child, tmp_path / "run")
    started.append(process)
    deadline = time.monotonic() + 10
    while len(proc.processes_mentioning(str(tmp_path / "run"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    found = proc.processes_mentioning(str(tmp_path / "run"))
    assert process.pid in found and len(found) == 2  # the grandchild too: it inherited RUN_ENV
    assert proc.stop_mentioning(str(tmp_path / "run"), grace=5) == []
    assert proc.processes_mentioning(str(tmp_path / "run")) == []


def test_teardown_says_incomplete_when_the_testbed_does_not_stop(machine, monkeypatch):
    from serving_conformance.cluster.base import Cluster, ProviderError
    from serving_conformance.manifests.load import ManifestSet

    run_dir = machine / "serving-conformance-stuck005"
    run_dir.mkdir()
    (run_dir / "cluster.json").write_text(Cluster("local", "sc-stuck", run_dir / "kubeconfig", None, True).to_json())

    def stop(self, cluster):
        raise ProviderError("the testbed did not fully stop: kserve-manager still runs")

    monkeypatch.setattr(LocalProvider, "stop", stop)
    said: list[str] = []
    assert ClusterSession(base_settings(cluster="local"), ManifestSet(roots=()), run_dir, "stuck005", said.append).teardown() is False
    assert any("could not stop what the local provider started" in line for line in said), said
    assert any(line.startswith("teardown took") and line.endswith("incomplete") for line in said), said
    assert not any(line.startswith("removed local cluster") for line in said)


CONFTEST = """
import pytest
from serving_conformance import plugin

@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    run_dir, _ = config.stash[plugin.RUN]
    run_dir.mkdir()
    (run_dir / "marker").write_text("")
    print("RUN_DIR", run_dir)
    plugin.ClusterSession.teardown_keeping_logs = lambda self, artifacts: {clean}
"""


@pytest.mark.parametrize("clean", [True, False])
def test_the_run_dir_is_removed_only_after_a_complete_teardown(pytester, clean):
    pytester.makeconftest(CONFTEST.format(clean=clean))
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    output = result.stdout.str() + result.stderr.str()
    run_dir = Path(next(line.split()[1] for line in output.splitlines() if line.startswith("RUN_DIR")))
    try:
        assert run_dir.exists() is not clean
        assert ("teardown incomplete: kept" in output) is not clean, output
    finally:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.mark.parametrize("ends_with_starter", [True, False])
def test_a_process_that_serves_one_run_ends_when_its_starter_is_killed(tmp_path, started, ends_with_starter):
    """A starter killed outright (SIGKILL: no teardown) takes what it spawned with
    `ends_with_starter` along; without it the process outlives the starter (the control)."""
    run = tmp_path / "run"
    starter = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from serving_conformance.base import proc; "
        f"p = proc.spawn('served', {SLEEP!r}, Path({str(run)!r}), ends_with_starter={ends_with_starter}); "
        "print(p.pid, flush=True); time.sleep(120)")], stdout=subprocess.PIPE, text=True)
    served = int(starter.stdout.readline())
    starter.kill()
    starter.wait()
    deadline = time.monotonic() + (10 if ends_with_starter else 2)
    while proc.running(served) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert proc.running(served) is not ends_with_starter
    finally:
        proc.stop(run, "served", grace=5)

"""One local testbed per machine, and what a run killed outright left behind is cleaned up by the
next one. Uses the provider's own functions on a private cache and temp directory; no testbed is
started (the live runs in the other self-tests start real ones)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from serving_conformance.base import proc
from serving_conformance.cluster.base import ProviderError
from serving_conformance.providers.local.provider import LocalProvider, claim_machine, release_machine

from .conftest import base_settings


@pytest.fixture
def private_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SERVING_CONFORMANCE_CACHE", str(tmp_path / "cache"))
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


def test_a_second_testbed_on_the_machine_is_refused_naming_the_first(private_machine, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""\
            import sys, time
            from pathlib import Path
            from serving_conformance.providers.local.provider import claim_machine
            claim_machine(Path({str(tmp_path / 'first-run')!r}))
            print("held", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ProviderError) as refused:
            claim_machine(tmp_path / "second-run")
        message = str(refused.value)
        assert "another local testbed runs on this machine" in message
        assert f"pid {holder.pid}" in message and "first-run" in message
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone (killed, no teardown): the lock went with it.
    claim_machine(tmp_path / "second-run")
    release_machine(tmp_path / "second-run")


def test_a_run_killed_outright_is_stopped_and_removed_by_the_next(private_machine, tmp_path):
    stale = private_machine / "serving-conformance-dead0001"
    (stale / "logs").mkdir(parents=True)
    # A process such a run leaves running: recorded by PID like the testbed's own processes.
    leftover = proc.spawn("kserve-manager", [sys.executable, "-c", "import time; time.sleep(120)"], stale)
    unrelated = private_machine / "serving-conformance-kind0002"  # a run without a testbed
    unrelated.mkdir()
    ours = private_machine / "serving-conformance-live0003"
    ours.mkdir()
    said: list[str] = []
    provider = LocalProvider(base_settings(cluster="local"), ours, said.append)
    try:
        provider.sweep_stale()
        deadline = time.monotonic() + 15
        while leftover.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert leftover.poll() is not None, "the stale run's process was left running"
        assert not stale.exists()
        assert unrelated.exists() and ours.exists()
        assert any("ended without teardown" in line and str(stale) in line for line in said), said
    finally:
        if leftover.poll() is None:
            leftover.kill()

"""The engine launcher brings servers up a few at a time, in order, and never launches one that was
stopped while it waited. The stand-in "python" below answers /health like a vLLM server after a
short start-up and records when it ran: this checks the suite's scheduling, not vLLM (which the
engine and testbed tests run for real)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from serving_conformance.engine.server import Launcher, ServerStartError, VllmServer, free_port

STAND_IN = textwrap.dedent(
    """\
    #!{python}
    import http.server, json, os, sys, time
    args = dict(a.split("=", 1) for a in sys.argv[3:] if a.startswith("--") and "=" in a)
    record = os.environ["STAND_IN_RECORD"]
    with open(record, "a") as out:
        out.write(json.dumps({{"port": args["--port"], "event": "start", "t": time.monotonic()}}) + "\\n")
    time.sleep(float(os.environ.get("STAND_IN_START_S", "0.6")))
    if os.environ.get("STAND_IN_FAIL"):
        sys.exit(3)
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers()
        def log_message(self, *a):
            pass
    with open(record, "a") as out:
        out.write(json.dumps({{"port": args["--port"], "event": "ready", "t": time.monotonic()}}) + "\\n")
    http.server.HTTPServer((args["--host"], int(args["--port"])), Health).serve_forever()
    """
)


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    import sys

    python = tmp_path / "python"
    python.write_text(STAND_IN.format(python=sys.executable))
    python.chmod(0o755)
    record = tmp_path / "record.jsonl"
    monkeypatch.setenv("STAND_IN_RECORD", str(record))
    monkeypatch.setenv("SERVING_CONFORMANCE_CACHE", str(tmp_path / "cache"))  # its own start slots
    return python, record


def server(python: Path, tmp_path: Path, name: str) -> VllmServer:
    return VllmServer(
        ["--served-model-name=x"], model_dir=tmp_path, python=python, port=free_port(),
        log_path=tmp_path / f"{name}.log", startup_timeout=20, stop_grace=2,
    )


def events(record: Path) -> list[dict]:
    return [json.loads(line) for line in record.read_text().splitlines()]


def bring_up(python: Path, tmp_path: Path, launchers: list[Launcher]) -> list[VllmServer]:
    """One server per entry of `launchers` (in that order), all waited on, then all stopped."""
    servers = [launcher.submit(server(python, tmp_path, f"s{i}")) for i, launcher in enumerate(launchers)]
    try:
        for item in servers:
            item.wait_ready()
    finally:
        for item in servers:
            item.stop()
        for launcher in set(launchers):
            launcher.close()
    return servers


def test_one_slot_starts_servers_one_after_another_in_order(stand_in, tmp_path):
    python, record = stand_in
    launcher = Launcher(slots=1)
    servers = bring_up(python, tmp_path, [launcher] * 3)
    seen = events(record)
    ports = [str(s.port) for s in servers]
    assert [e["port"] for e in seen if e["event"] == "start"] == ports, "servers started out of order"
    # Each start begins only after the one before it answered: never two start-ups at once.
    for before, after in zip(ports, ports[1:]):
        ready = next(e["t"] for e in seen if e["port"] == before and e["event"] == "ready")
        start = next(e["t"] for e in seen if e["port"] == after and e["event"] == "start")
        assert start >= ready, f"server on {after} started before the one on {before} was up"
    assert servers[2].queued_seconds > servers[0].queued_seconds


def test_two_slots_let_two_start_at_once(stand_in, tmp_path, monkeypatch):
    python, record = stand_in
    monkeypatch.setenv("STAND_IN_START_S", "2")  # ample time for the second to start meanwhile
    bring_up(python, tmp_path, [Launcher(slots=2)] * 2)
    starts = sorted(e["t"] for e in events(record) if e["event"] == "start")
    readies = sorted(e["t"] for e in events(record) if e["event"] == "ready")
    assert starts[1] < readies[0], "with two slots the second server should not wait for the first"


def test_a_server_stopped_while_queued_never_launches(stand_in, tmp_path):
    python, record = stand_in
    launcher = Launcher(slots=1)
    first = launcher.submit(server(python, tmp_path, "first"))
    queued = launcher.submit(server(python, tmp_path, "queued"))
    queued.stop()
    try:
        first.wait_ready()
        with pytest.raises(ServerStartError, match="stopped before it started"):
            queued.wait_ready()
        assert queued.process is None
        assert [e["port"] for e in events(record) if e["event"] == "start"] == [str(first.port)]
    finally:
        first.stop()
        launcher.close()


def test_a_failed_start_is_reported_to_its_waiter_and_frees_the_slot(stand_in, tmp_path, monkeypatch):
    python, record = stand_in
    monkeypatch.setenv("STAND_IN_FAIL", "1")
    launcher = Launcher(slots=1)
    failing = launcher.submit(server(python, tmp_path, "failing"))
    with pytest.raises(ServerStartError, match="exited with code 3"):
        failing.wait_ready()
    monkeypatch.delenv("STAND_IN_FAIL")
    after = launcher.submit(server(python, tmp_path, "after"))
    try:
        after.wait_ready()
    finally:
        after.stop()
        launcher.close()


def test_start_slots_come_from_the_environment_or_the_cores(monkeypatch):
    from serving_conformance.engine import server as module

    monkeypatch.setenv(module.START_SLOTS_ENV, "3")
    assert module.start_slots() == 3
    monkeypatch.setenv(module.START_SLOTS_ENV, "0")
    with pytest.raises(ValueError, match="at least 1"):
        module.start_slots()
    monkeypatch.delenv(module.START_SLOTS_ENV)
    assert module.start_slots() == max(1, (os.cpu_count() or 1) // module.CORES_PER_START)


def test_separate_launchers_share_the_machine_wide_slot(stand_in, tmp_path):
    """Two launchers (as the suite and the testbed's node agent are) still start one at a time."""
    python, record = stand_in
    bring_up(python, tmp_path, [Launcher(slots=1), Launcher(slots=1)])
    seen = sorted(events(record), key=lambda e: e["t"])
    assert [e["event"] for e in seen] == ["start", "ready", "start", "ready"], seen

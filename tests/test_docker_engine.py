"""The container engine set-up's contract, with fake executables on a private machine layout:
where `docker info` answers nothing is installed or reconfigured; otherwise what is missing is set
up, once; a daemon.json the suite did not write is never overwritten; the dockerd the suite
started is stopped by its record."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from serving_conformance.toolchain import debian, docker
from serving_conformance.toolchain.docker import (
    DOCKER_ADDRESS_POOL,
    DOCKER_BRIDGE_IP,
    KIND_NETWORK,
    KIND_NETWORK_SUBNET,
    EngineError,
    Host,
)

# One fake for every program: it logs its argument list; `docker info` answers while the fake
# dockerd runs (it writes its pid to a file and sleeps); `apt-get install` installs the fake
# dockerd; dpkg-query knows what apt-get installed.
FAKE = """#!{python}
import json, os, signal, sys, time
from pathlib import Path
root = Path(os.environ["FAKE_ROOT"])
name, args = os.path.basename(sys.argv[0]), sys.argv[1:]
with open(root / "calls.jsonl", "a") as log:
    log.write(json.dumps([name] + args) + "\\n")
running = root / "dockerd.pid"
def alive():
    try:
        os.kill(int(running.read_text()), 0)
        return True
    except (OSError, ValueError):
        return False
if name == "docker":
    if args[:1] == ["info"]:
        if os.environ.get("FAKE_ENGINE") == "user" or alive():
            print("20.10.24")
            sys.exit(0)
        print("Cannot connect to the Docker daemon", file=sys.stderr)
        sys.exit(1)
    if args[:2] == ["network", "inspect"]:
        networks = json.loads((root / "networks.json").read_text()) if (root / "networks.json").exists() else {{}}
        if args[2] not in networks:
            sys.exit(1)
        print(json.dumps([{{"Subnet": networks[args[2]]}}]))
    if args[:2] == ["network", "create"]:
        networks = json.loads((root / "networks.json").read_text()) if (root / "networks.json").exists() else {{}}
        networks[args[-1]] = args[args.index("--subnet") + 1]
        (root / "networks.json").write_text(json.dumps(networks))
    sys.exit(0)
if name == "dockerd":
    running.write_text(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(0.1)
if name == "dpkg-query":
    installed = (root / "installed").read_text().split() if (root / "installed").exists() else []
    print("install ok installed" if args[-1] in installed else "unknown ok not-installed", end="")
    sys.exit(0 if args[-1] in installed else 1)
if name == "apt-get" and args[:1] == ["install"]:
    (root / "installed").write_text(" ".join(a for a in args if not a.startswith("-") and a != "install"))
    dockerd = Path(os.environ["FAKE_BIN"]) / "dockerd"
    dockerd.write_text(Path(sys.argv[0]).read_text())
    dockerd.chmod(0o755)
sys.exit(0)
"""


@pytest.fixture
def machine(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = ["docker", "dpkg-query", "apt-get", "runc"]

    def install(tool):
        path = bin_dir / tool
        path.write_text(FAKE.format(python=sys.executable))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)

    for tool in tools:
        install(tool)
    monkeypatch.setenv("PATH", str(bin_dir))  # only the fakes: nothing real is installed or started
    monkeypatch.setenv("FAKE_ROOT", str(tmp_path))
    monkeypatch.setenv("FAKE_BIN", str(bin_dir))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(debian, "is_debian", lambda: True)
    host = Host(daemon_json=tmp_path / "etc/docker/daemon.json", wrapper_dir=tmp_path / "sbin",
                state_dir=tmp_path / "state" / "dockerd", lacks_sys_resource=True)

    def calls(tool=None):
        log = tmp_path / "calls.jsonl"
        entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return [e for e in entries if tool is None or e[0] == tool]

    yield host, calls, install
    docker.stop_engine(host)


def said():
    lines: list[str] = []
    return lines, lines.append


def test_where_docker_answers_nothing_is_installed_or_reconfigured(machine, monkeypatch):
    host, calls, _ = machine
    monkeypatch.setenv("FAKE_ENGINE", "user")
    engine = docker.ensure_engine(said()[1], host)
    assert not engine.started and engine.version == "20.10.24"
    assert "used as it is" in engine.summary()
    assert [c[:2] for c in calls()] == [["docker", "info"]]
    assert not host.daemon_json.exists() and not host.wrapper_dir.exists() and not host.state_dir.exists()


def test_without_an_engine_it_installs_configures_and_starts_one_then_reuses_it(machine):
    host, calls, _ = machine
    lines, log = said()
    engine = docker.ensure_engine(log, host)
    assert engine.started and engine.pid
    # docker.io installed (dockerd was missing), then found installed
    assert ["apt-get", "install", "-y", "-q", "docker.io"] in calls("apt-get")
    wrappers = list(host.wrapper_dir.iterdir())
    assert len(wrappers) == 1 and wrappers[0].name.startswith("runc-drop-sys-resource-")
    text = wrappers[0].read_text()
    assert "CAP_SYS_RESOURCE" in text and f'REAL = "{host.wrapper_dir.parent / "bin" / "runc"}"' in text
    assert os.access(wrappers[0], os.X_OK)
    config = json.loads(host.daemon_json.read_text())
    assert config == {
        "bip": DOCKER_BRIDGE_IP, "default-address-pools": [{"base": DOCKER_ADDRESS_POOL, "size": 24}],
        "runtimes": {"runc-drop-sys-resource": {"path": str(wrappers[0])}}, "default-runtime": "runc-drop-sys-resource",
    }
    assert docker.written_by_suite(host, host.daemon_json.read_bytes())
    assert (host.state_dir / "pids" / "dockerd.pid").read_text().split()[0] == str(engine.pid)
    assert ["dockerd", "--config-file", str(host.daemon_json)] in calls("dockerd")
    # Second time: it answers, so nothing more is done.
    before = len(calls())
    again = docker.ensure_engine(log, host)
    assert not again.started and [c[:2] for c in calls()[before:]] == [["docker", "info"]]
    assert docker.stop_engine(host) and not docker.stop_engine(host)


def test_a_daemon_json_the_suite_did_not_write_is_never_overwritten(machine):
    host, calls, install = machine
    install("dockerd")
    host.daemon_json.parent.mkdir(parents=True)
    mine = '{"log-level": "debug"}\n'
    host.daemon_json.write_text(mine)
    with pytest.raises(EngineError, match="not written by serving-conformance.*Merge those keys"):
        docker.ensure_engine(said()[1], host)
    assert host.daemon_json.read_text() == mine
    assert not host.wrapper_dir.exists(), "a refusal leaves the machine as it was"
    assert not calls("dockerd") and not calls("apt-get")


def test_a_daemon_json_the_suite_wrote_is_rewritten_when_its_recipe_changes(machine):
    host, _, install = machine
    install("dockerd")
    host.daemon_json.parent.mkdir(parents=True)
    docker.write_daemon_json(host, b'{"bip": "198.19.0.1/24"}\n')  # an older recipe's file
    engine = docker.ensure_engine(said()[1], host)
    assert engine.started and f"wrote {host.daemon_json}" in engine.changes
    assert json.loads(host.daemon_json.read_text())["default-runtime"] == "runc-drop-sys-resource"


def test_no_wrapper_where_the_machine_has_cap_sys_resource(machine):
    host, _, install = machine
    install("dockerd")
    host = Host(daemon_json=host.daemon_json, wrapper_dir=host.wrapper_dir, state_dir=host.state_dir,
                lacks_sys_resource=False)
    docker.ensure_engine(said()[1], host)
    assert json.loads(host.daemon_json.read_text()) == docker.daemon_config(None)
    assert not host.wrapper_dir.exists()
    docker.stop_engine(host)


def test_not_root_without_an_engine_is_refused(machine, monkeypatch):
    host, calls, _ = machine
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(EngineError, match="needs root"):
        docker.ensure_engine(said()[1], host)
    assert not calls("apt-get") and not host.daemon_json.exists()


def test_kinds_network_is_created_once_and_a_foreign_one_refused(machine, tmp_path, monkeypatch):
    host, calls, _ = machine
    monkeypatch.setenv("FAKE_ENGINE", "user")
    assert "created" in docker.ensure_network(host)
    assert "exists" in docker.ensure_network(host)
    creates = [c for c in calls("docker") if c[1:3] == ["network", "create"]]
    assert len(creates) == 1 and creates[0][-1] == KIND_NETWORK and KIND_NETWORK_SUBNET in creates[0]
    assert "--ipv6" not in creates[0]
    (tmp_path / "networks.json").write_text(json.dumps({KIND_NETWORK: "172.18.0.0/16"}))
    with pytest.raises(EngineError, match="not 198.19.32.0/20"):
        docker.ensure_network(host)


def test_the_wrapper_is_named_by_its_content():
    first, second = docker.wrapper_text("/usr/sbin/runc"), docker.wrapper_text("/usr/bin/runc")
    host = Host(state_dir=Path("/nonexistent"))
    assert docker.wrapper_path(host, first) != docker.wrapper_path(host, second)
    assert docker.wrapper_path(host, first) == docker.wrapper_path(host, docker.wrapper_text("/usr/sbin/runc"))

"""One cluster per run, also under xdist.

The controller process makes a run directory and hands it to the workers. The first process that
needs the cluster creates it (and installs the platform) under a file lock and records it in
`<run>/cluster.json`; the others read that record. The controller alone tears down at the end:
the run's namespaces, then what the provider created. SIGTERM is turned into KeyboardInterrupt
so an interrupted run still goes through the same teardown.
"""

from __future__ import annotations

import os
import secrets
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from serving_conformance.base.proc import file_lock
from serving_conformance.cluster.providers import Cluster, ProviderError, choose_provider
from serving_conformance.options import Settings

RUN_DIR_KEY = "sc_run_dir"
RUN_DIR_PREFIX = "serving-conformance-"
RUN_ID_KEY = "sc_run_id"
# Shared through the pytest config: the run (directory, id), the workloads the selected tests will
# deploy, and the worker's deployer.
RUN = pytest.StashKey[tuple[Path, str]]()
CLUSTER_RESOURCES = pytest.StashKey[list]()
DEPLOYER = pytest.StashKey[object]()


def new_run() -> tuple[Path, str]:
    """A run id and the path of its directory, created only when a cluster is first needed (a run
    of static tests leaves nothing behind, not even an empty directory)."""
    run_id = secrets.token_hex(4)
    return run_dirs_root() / f"{RUN_DIR_PREFIX}{run_id}", run_id


def run_dirs_root() -> Path:
    return Path(tempfile.gettempdir())


def install_sigterm_handler() -> None:
    """Make SIGTERM behave like Ctrl-C so fixtures and session teardown run."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, handler)


class ClusterSession:
    def __init__(self, settings: Settings, run_dir: Path, run_id: str, log: Callable[[str], None]) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.run_id = run_id
        self.log = log
        self.record = run_dir / "cluster.json"
        self.failure = run_dir / "cluster.failed"

    def cluster(self) -> Cluster:
        """The run's cluster, created and made ready by the first caller."""
        self.run_dir.mkdir(mode=0o700, exist_ok=True)
        with file_lock(self.run_dir / "cluster.lock"):
            if self.record.exists():
                return Cluster.from_json(self.record.read_text())
            if self.failure.exists():
                # Do not retry a failed start in every worker: report the first failure.
                raise ProviderError(self.failure.read_text())
            provider = choose_provider(self.settings, self.run_dir, self.log)
            try:
                cluster = provider.start()
                # Recorded before installing, so teardown removes it even if the install fails.
                self.record.write_text(cluster.to_json())
                from serving_conformance.cluster.installer import Installer

                Installer(self.settings, cluster, self.run_dir, self.log).install()
            except BaseException as exc:
                self.failure.write_text(f"{type(exc).__name__}: {exc}")
                raise
            self.record.write_text(cluster.to_json())
            return cluster

    def teardown_keeping_logs(self, artifacts: Path | None) -> None:
        """Teardown; first, when the run failed, keep the testbed's own logs with the diagnostics."""
        logs = self.run_dir / "logs"
        if artifacts is not None and logs.is_dir():
            import shutil

            target = artifacts / "testbed-logs"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(logs, target, symlinks=True)
            self.log(f"testbed logs kept in {target}")
        self.teardown()

    def teardown(self) -> None:
        """Controller only: remove the run's namespaces and whatever the provider created."""
        if not self.record.exists():
            return
        cluster = Cluster.from_json(self.record.read_text())
        from serving_conformance.cluster.installer import Installer

        try:
            Installer(self.settings, cluster, self.run_dir, self.log).remove_run_objects(self.run_id)
        except Exception as exc:  # keep going: the cluster itself must still be removed
            self.log(f"could not remove this run's objects: {exc}")
        provider = choose_provider(self._provider_settings(cluster), self.run_dir, self.log)
        provider.stop(cluster)
        if cluster.created and not self.settings.keep_cluster:
            self.log(f"removed {cluster.provider} cluster {cluster.name}")
        elif cluster.created:
            self.log(f"kept {cluster.provider} cluster {cluster.name} (--keep-cluster); kubeconfig {cluster.kubeconfig}")

    def _provider_settings(self, cluster: Cluster) -> Settings:
        from dataclasses import replace

        return replace(self.settings, cluster=cluster.provider)


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")

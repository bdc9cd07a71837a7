"""Cluster providers: kind, an existing cluster (GKE and others), the local testbed.

A provider turns the cluster options into a `Cluster` (a kubeconfig and a context the suite may
use) and, at the end, removes only what it created. Every external command is an argument list.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from serving_conformance.base import proc, versions
from serving_conformance.options import PROJECT_ROOT, Settings

KIND_CONFIG = PROJECT_ROOT / "fixtures" / "kind" / "cluster.yaml"


class ProviderError(RuntimeError):
    """The cluster cannot be provided; the message says why and what to do."""


@dataclass
class Cluster:
    provider: str
    name: str
    kubeconfig: Path
    context: str | None
    # True when the suite created it and so may delete it.
    created: bool
    # Nodes are simulated (no containers run); GPU nodes are then simulated too.
    simulated: bool = False
    # The platform (KServe, gateway) is run by the provider itself, not installed into the cluster.
    platform_managed: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["kubeconfig"] = str(self.kubeconfig)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Cluster:
        data = json.loads(text)
        data["kubeconfig"] = Path(data["kubeconfig"])
        return cls(**data)


class Provider(Protocol):
    name: str

    def start(self) -> Cluster: ...

    def stop(self, cluster: Cluster) -> None: ...


Runner = Callable[[list[str]], subprocess.CompletedProcess]


def run_command(args: list[str], timeout: float | None = None) -> subprocess.CompletedProcess:
    return proc.attempt(args, timeout=timeout)


def _version_tuple(text: str) -> tuple[int, ...]:
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    if not match:
        raise ValueError(f"no version in {text!r}")
    return tuple(int(x) for x in match.groups())


def docker_engine_available(run: Runner = run_command) -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return run(["docker", "info", "--format", "{{.ServerVersion}}"]).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class KindProvider:
    """Drives the `kind` on PATH (see the README for why not pytest-kind's downloaded binary)."""

    name = "kind"

    def __init__(self, settings: Settings, run_dir: Path, run: Runner = run_command) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.run = run
        self.kubeconfig = run_dir / "kind-kubeconfig.yaml"

    def _kind(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(["kind", *args])

    def check_tools(self) -> str:
        if shutil.which("kind") is None:
            raise ProviderError(
                f"`kind` is not on PATH: install kind {versions.KIND_MIN} or later "
                "(https://kind.sigs.k8s.io/docs/user/quick-start/#installation), "
                "or choose --cluster existing or --cluster local"
            )
        result = self._kind("version")
        try:
            found = _version_tuple(result.stdout)
        except ValueError as exc:
            raise ProviderError(f"cannot read the kind version from `kind version`: {result.stdout!r}") from exc
        if found < _version_tuple(versions.KIND_MIN):
            raise ProviderError(
                f"kind {'.'.join(map(str, found))} is older than the {versions.KIND_MIN} this suite needs; upgrade kind"
            )
        if not docker_engine_available(self.run):
            raise ProviderError("kind needs a running container engine and `docker info` fails here")
        return result.stdout.strip()

    def start(self) -> Cluster:
        kind_version = self.check_tools()
        name = self.settings.cluster_name
        existing = self._kind("get", "clusters").stdout.split()
        created = name not in existing
        if created:
            result = self._kind(
                "create", "cluster",
                "--name", name,
                "--config", str(KIND_CONFIG),
                "--image", f"kindest/node:v{versions.KIND_NODE_IMAGE_K8S}",
                "--kubeconfig", str(self.kubeconfig),
                "--wait", f"{int(self.settings.timeouts.cluster_create)}s",
            )
            if result.returncode != 0:
                # A failed create can leave a half cluster behind: remove it.
                self._kind("delete", "cluster", "--name", name, "--kubeconfig", str(self.kubeconfig))
                raise ProviderError(f"kind could not create cluster {name!r}:\n{result.stderr.strip()[-2000:]}")
        else:
            result = self._kind("get", "kubeconfig", "--name", name)
            if result.returncode != 0:
                raise ProviderError(f"kind cannot give the kubeconfig of {name!r}: {result.stderr.strip()}")
            self.kubeconfig.write_text(result.stdout)
        return Cluster(
            provider=self.name,
            name=name,
            kubeconfig=self.kubeconfig,
            context=f"kind-{name}",
            created=created,
            info={"kind": kind_version, "reused": not created},
        )

    def stop(self, cluster: Cluster) -> None:
        if cluster.created and not self.settings.keep_cluster:
            self._kind("delete", "cluster", "--name", cluster.name, "--kubeconfig", str(cluster.kubeconfig))


class ExistingProvider:
    """Any kubeconfig context the user explicitly allowed; never created, never deleted."""

    name = "existing"

    def __init__(self, settings: Settings, run_dir: Path) -> None:
        self.settings = settings
        self.run_dir = run_dir

    def kubeconfig_path(self) -> Path:
        if self.settings.kubeconfig is not None:
            return self.settings.kubeconfig
        env = os.environ.get("KUBECONFIG", "")
        if env:
            paths = [p for p in env.split(os.pathsep) if p]
            if len(paths) > 1:
                raise ProviderError("KUBECONFIG lists several files: pass the one to use with --kubeconfig")
            return Path(paths[0])
        return Path.home() / ".kube" / "config"

    def choose_context(self, kubeconfig: Path) -> str:
        try:
            data = yaml.safe_load(kubeconfig.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ProviderError(f"cannot read kubeconfig {kubeconfig}: {exc}") from exc
        contexts = [c.get("name") for c in data.get("contexts") or []]
        context = self.settings.kube_context or data.get("current-context")
        if not context:
            raise ProviderError(f"{kubeconfig} has no current context: pass --kube-context")
        if context not in contexts:
            raise ProviderError(f"context {context!r} is not in {kubeconfig} (it has: {', '.join(contexts) or 'none'})")
        if context not in self.settings.allowed_contexts:
            raise ProviderError(
                f"refusing to touch context {context!r}: the suite creates and deletes namespaces and, with "
                f"--install-platform, cluster-wide objects. Allow it explicitly with --allow-context {context}"
            )
        return context

    def start(self) -> Cluster:
        kubeconfig = self.kubeconfig_path()
        context = self.choose_context(kubeconfig)
        return Cluster(provider=self.name, name=context, kubeconfig=kubeconfig, context=context, created=False)

    def stop(self, cluster: Cluster) -> None:
        """An existing cluster is never deleted; the run's namespaces are removed by the session."""


def choose_provider(settings: Settings, run_dir: Path, log: Callable[[str], None]) -> Provider:
    choice = settings.cluster
    if choice == "auto":
        if shutil.which("kind") and docker_engine_available():
            choice = "kind"
            log("--cluster auto: kind is on PATH and a container engine answers: using kind")
        else:
            choice = "local"
            log("--cluster auto: no container engine here (`docker info` fails): using the local testbed")
    if choice == "kind":
        return KindProvider(settings, run_dir)
    if choice == "existing":
        return ExistingProvider(settings, run_dir)
    if choice == "local":
        from serving_conformance.testbed.provider import LocalProvider

        return LocalProvider(settings, run_dir, log)
    raise ProviderError("--cluster none: cluster tests cannot run")

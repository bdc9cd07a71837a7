"""Which provider a run uses: the one asked for, or for `auto` kind where a container engine
answers, else the local testbed."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from serving_conformance.base.settings import Settings
from serving_conformance.cluster.base import Provider, ProviderError
from serving_conformance.providers.existing import ExistingProvider
from serving_conformance.providers.kind import KindProvider, docker_engine_available
from serving_conformance.providers.local.provider import LocalProvider


def resolve_choice(choice: str, log: Callable[[str], None]) -> str:
    if choice != "auto":
        return choice
    if shutil.which("kind") and docker_engine_available():
        log("--cluster auto: kind is on PATH and a container engine answers: using kind")
        return "kind"
    log("--cluster auto: no container engine here (`docker info` fails): using the local testbed")
    return "local"


def bounded_capacity(choice: str) -> bool:
    """Whether the provider this choice resolves to holds only a few vLLM pods at once (kind on
    one machine): the tests are then grouped by workload."""
    if choice == "auto":
        return bool(shutil.which("kind")) and docker_engine_available()
    return choice == "kind"


def choose_provider(settings: Settings, run_dir: Path, log: Callable[[str], None], choice: str | None = None) -> Provider:
    choice = resolve_choice(choice or settings.cluster, log)
    if choice == "kind":
        return KindProvider(settings, run_dir, log=log)
    if choice == "existing":
        return ExistingProvider(settings, run_dir)
    if choice == "local":
        return LocalProvider(settings, run_dir, log)
    raise ProviderError("--cluster none: cluster tests cannot run")

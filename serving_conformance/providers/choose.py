"""Which provider a run uses: the one asked for, or for `auto` kind where a container engine
answers and kind is there, else the local testbed (`prepare` resolves `auto` the same way)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from serving_conformance.base.settings import Settings
from serving_conformance.cluster.base import Provider, ProviderError
from serving_conformance.providers.existing import ExistingProvider
from serving_conformance.providers.kind import KindProvider, docker_engine_available
from serving_conformance.providers.local.provider import LocalProvider
from serving_conformance.toolchain.kindnode import cached_kind


def auto_choice() -> tuple[str, str]:
    """What `auto` means on this machine, and why: kind where a container engine answers and kind
    is there (on PATH, or built here by `prepare --for-cluster kind`), else the local testbed."""
    kind = shutil.which("kind") or cached_kind()
    if not kind:
        return "local", "kind is neither on PATH nor built here"
    if not docker_engine_available():
        return "local", "no container engine answers (`docker info` fails)"
    return "kind", f"a container engine answers and kind is here ({kind})"


def resolve_choice(choice: str, log: Callable[[str], None]) -> str:
    if choice != "auto":
        return choice
    chosen, why = auto_choice()
    log(f"--cluster auto: {why}: using {'kind' if chosen == 'kind' else 'the local testbed'}")
    return chosen


def bounded_capacity(choice: str) -> bool:
    """Whether the provider this choice resolves to holds only a few vLLM pods at once (kind on
    one machine): the tests are then grouped by workload."""
    return (auto_choice()[0] if choice == "auto" else choice) == "kind"


def choose_provider(settings: Settings, run_dir: Path, log: Callable[[str], None], choice: str | None = None) -> Provider:
    choice = resolve_choice(choice or settings.cluster, log)
    if choice == "kind":
        return KindProvider(settings, run_dir, log=log)
    if choice == "existing":
        return ExistingProvider(settings, run_dir)
    if choice == "local":
        return LocalProvider(settings, run_dir, log)
    raise ProviderError("--cluster none: cluster tests cannot run")

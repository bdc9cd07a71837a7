"""The platform under test, named in the report: the repository each manifests directory belongs
to, its commit, and whether the tree under test differs from that commit (a verdict on a dirty
tree is not a verdict on the commit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from serving_conformance.base import proc
from serving_conformance.base.redact import redact_text
from serving_conformance.manifests.files import repository_top

GIT_TIMEOUT_S = 10.0


def _git(top: Path, *args: str) -> str | None:
    result = proc.attempt(["git", "-C", str(top), *args], timeout=GIT_TIMEOUT_S)  # 127/124: no git, no answer
    return result.stdout.strip() if result.returncode == 0 else None


def describe(root: Path) -> dict[str, Any]:
    """{path, repository (its origin, credentials redacted), commit, dirty} of one manifests root."""
    found: dict[str, Any] = {"path": str(root)}
    top = repository_top(root)
    if top is None:
        found["repository"] = None
        return found
    found["repository"] = redact_text(_git(top, "remote", "get-url", "origin") or str(top))
    found["commit"] = _git(top, "rev-parse", "HEAD")
    status = _git(top, "status", "--porcelain", "--untracked-files=normal", "--", str(root))
    found["dirty"] = None if status is None else bool(status)
    return found

"""Where installed tools live: outside the repository, keyed by version."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The cache directory; SERVING_CONFORMANCE_CACHE overrides ~/.cache/serving-conformance."""
    override = os.environ.get("SERVING_CONFORMANCE_CACHE")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "serving-conformance"


def cache_dir(*parts: str) -> Path:
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path

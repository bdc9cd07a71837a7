"""Files shipped with the package: the conformance tests, default manifests, kind's cluster
config, the wrapper Go modules the builds use and the container engine's runc wrapper. Paths
only; nothing is read here."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
DATA = PACKAGE / "data"


def _shipped(in_package: Path, in_checkout: str) -> Path:
    """The wheel carries the conformance tests and the example manifests inside the package; a
    checkout (and an editable install of it) keeps them at its top level, where they are read.
    A package directory holding only bytecode caches is what an older checkout leaves behind."""
    return in_package if _holds_files(in_package) else PACKAGE.parent / in_checkout


def _holds_files(directory: Path) -> bool:
    return directory.is_dir() and any(
        p.is_file() and "__pycache__" not in p.relative_to(directory).parts for p in directory.rglob("*"))


SUITE = _shipped(PACKAGE / "suite", "conformance")
DEFAULT_MANIFESTS = _shipped(DATA / "manifests", "manifests")
KIND_CONFIG = DATA / "kind" / "cluster.yaml"
TOOLCHAIN = DATA / "toolchain"
RUNC_WRAPPER = DATA / "docker" / "runc-drop-sys-resource"

"""Files shipped with the package: the conformance tests, default manifests, kind's cluster
config, the wrapper Go modules the builds use and the container engine's runc wrapper. Paths
only; nothing is read here."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
DATA = PACKAGE / "data"
SUITE = PACKAGE / "suite"
DEFAULT_MANIFESTS = DATA / "manifests"
KIND_CONFIG = DATA / "kind" / "cluster.yaml"
TOOLCHAIN = DATA / "toolchain"
RUNC_WRAPPER = DATA / "docker" / "runc-drop-sys-resource"

"""`serving-conformance`: the conformance suite on the platform repository you are in.

    serving-conformance [pytest options]        # e.g. -m static, -m cpu, --cluster existing ...

Runs the shipped conformance tests (`conformance/` of a checkout, `serving_conformance/suite` in
the wheel) with pytest, rooted in them so that the platform repository's own pytest configuration, conftest files and tests are
never picked up, with `--manifests-dir .` (the current directory) unless manifests are named, and
the report written to ./conformance-report.yaml unless another is asked for. Relative paths are
taken from the current directory.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import pytest

from serving_conformance.base.data import SUITE

DEFAULT_REPORT = "conformance-report.yaml"


def _given(args: Sequence[str], option: str) -> bool:
    return any(a == option or a.startswith(option + "=") for a in args)


def pytest_args(args: Sequence[str]) -> list[str]:
    chosen = list(args)
    defaults = []
    if not _given(chosen, "--manifests-dir"):
        defaults.append("--manifests-dir=.")
    if not _given(chosen, "--conformance-report"):
        defaults.append(f"--conformance-report={DEFAULT_REPORT}")
    # The suite's own ini file: no rootdir or configuration of the platform repository applies.
    # This module imported the package before pytest could mark it for assertion rewriting: the
    # suite's checks raise their own messages, so nothing is lost; say nothing about it.
    quiet = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    return [str(SUITE), "-c", str(SUITE / "pytest.ini"), "--rootdir", str(SUITE), *quiet, *defaults, *chosen]


def main(argv: Sequence[str] | None = None) -> int:
    return int(pytest.main(pytest_args(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())

"""Debian packages a preparation step needs (the container engine, debootstrap, a C toolchain).

Only what is missing is installed, with apt-get (root, Debian); an installed package is never
touched, so a machine that has everything needs neither root nor the network.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from serving_conformance.base import proc

Log = Callable[[str], None]


class PackageError(RuntimeError):
    """Packages are missing and cannot be installed here; the message says which and why."""


def is_debian() -> bool:
    return Path("/etc/debian_version").exists() and shutil.which("apt-get") is not None


def missing(packages: Sequence[str]) -> list[str]:
    """The packages dpkg does not know as installed."""
    if shutil.which("dpkg-query") is None:
        return list(packages)
    result = []
    for package in packages:
        status = proc.attempt(["dpkg-query", "-W", "-f=${Status}", package], timeout=60)
        if status.returncode != 0 or status.stdout.strip() != "install ok installed":
            result.append(package)
    return result


def ensure_packages(packages: Sequence[str], why: str, log: Log, timeout: float) -> list[str]:
    """Install what of `packages` is missing; returns what was installed."""
    needed = missing(packages)
    if not needed:
        return []
    if not is_debian():
        raise PackageError(f"{why} needs {', '.join(needed)}: install them (this is not a Debian machine "
                           "with apt-get, so the suite cannot)")
    if os.geteuid() != 0:
        raise PackageError(f"{why} needs the Debian packages {', '.join(needed)}: install them "
                           f"(`apt-get install {' '.join(needed)}`) or run as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log(f"installing Debian packages for {why}: {', '.join(needed)}")
    proc.run(["apt-get", "update", "-q"], step="apt-get update", timeout=timeout, env=env, error=PackageError)
    proc.run(["apt-get", "install", "-y", "-q", *needed], step=f"apt-get install {' '.join(needed)}",
             timeout=timeout, env=env, error=PackageError)
    still = missing(needed)
    if still:
        raise PackageError(f"apt-get finished but {', '.join(still)} is still not installed")
    return needed

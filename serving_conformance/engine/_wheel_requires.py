"""Print, as JSON, the requirements of a wheel that apply to this interpreter.

Run with the engine venv's python, so markers are evaluated for the environment that will
install them. Usage: python _wheel_requires.py WHEEL [DROP_NAME ...]
"""

from __future__ import annotations

import json
import sys
import zipfile

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # a fresh venv has pip's vendored copy only
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name


def wheel_metadata(wheel: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(name).decode("utf-8")


def applicable_requirements(metadata: str, dropped: set[str]) -> tuple[list[str], list[str]]:
    """Requires-Dist lines whose markers hold here (no extras), minus the dropped names."""
    kept: list[str] = []
    removed: list[str] = []
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if canonicalize_name(req.name) in dropped:
            removed.append(str(req))
            continue
        req.marker = None  # already evaluated; keeps pip's command line plain
        kept.append(str(req))
    return kept, removed


def main(argv: list[str]) -> int:
    wheel, dropped = argv[0], {canonicalize_name(n) for n in argv[1:]}
    kept, removed = applicable_requirements(wheel_metadata(wheel), dropped)
    json.dump({"requirements": kept, "dropped": removed}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

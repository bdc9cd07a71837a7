import os
from pathlib import Path

import pytest

from serving_conformance.cache import cache_root

pytest_plugins = ["pytester"]

# pytester points HOME at a temporary directory; keep the suite's cache where it is.
os.environ.setdefault("SERVING_CONFORMANCE_CACHE", str(cache_root()))

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO

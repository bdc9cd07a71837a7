"""Progress lines for long waits, written past pytest's output capture.

pytest captures file descriptor 2 while tests run; a duplicate of it, taken when the plugin is
imported (before capturing starts), still reaches the terminal or the CI log.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

_START = time.monotonic()


def _open_stream() -> TextIO:
    try:
        return os.fdopen(os.dup(2), "w", buffering=1)
    except OSError:
        return sys.__stderr__ or sys.stderr


_STREAM = _open_stream()


def progress(message: str) -> None:
    elapsed = time.monotonic() - _START
    print(f"[serving-conformance {elapsed:6.1f}s] {message}", file=_STREAM, flush=True)

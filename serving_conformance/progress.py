"""Progress lines for long waits, written past pytest's output capture."""

from __future__ import annotations

import sys
import time

_START = time.monotonic()


def progress(message: str) -> None:
    elapsed = time.monotonic() - _START
    stream = sys.__stderr__ or sys.stderr
    print(f"[serving-conformance {elapsed:6.1f}s] {message}", file=stream, flush=True)

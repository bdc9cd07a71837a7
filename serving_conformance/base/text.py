"""Text the suite writes about untrusted objects, bounded: a manifest can hold megabytes (or, read
naively, gigabytes) of data, and one failure message must not carry it all."""

from __future__ import annotations

import reprlib
from typing import Any

from serving_conformance.base.limits import MAX_FINDING_CHARS, MAX_REPR_CHARS


def clip(text: str, limit: int = MAX_FINDING_CHARS) -> str:
    """`text` cut to about `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


class _Repr(reprlib.Repr):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.maxlevel = 4
        self.maxlist = self.maxtuple = self.maxset = self.maxdict = 8
        self.maxstring = self.maxother = limit


def short_repr(value: Any, limit: int = MAX_REPR_CHARS) -> str:
    """A repr of `value` costing time in proportion to `limit`, not to the size of `value`
    (nested containers are cut at each level; a self-referencing one shows `...`)."""
    return clip(_Repr(limit).repr(value), limit)

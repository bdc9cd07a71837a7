"""Validate vLLM server arg lists with vLLM's own CLI parser; run with the engine venv's python.

stdin: a JSON list of arg lists. stdout: one JSON object
{"vllm_version", "parser_module", "results": [{"ok", "error", "values"}, ...]}.
The parser is built once (it takes seconds) and reused for every list.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

# Where make_arg_parser lived in the versions seen; tried first, then the package is searched.
KNOWN_MODULES = ("vllm.entrypoints.launchers.cli_args", "vllm.entrypoints.openai.cli_args")
PARSER_CLASS_MODULES = ("vllm.utils.argparse_utils", "vllm.utils")
# Options only the OpenAI server parser has (run_batch.py also defines a make_arg_parser).
SERVER_OPTIONS = ("--served-model-name", "--port", "--host")


class ArgError(Exception):
    """Raised instead of argparse's print-and-exit."""


def _candidate_modules() -> Iterator[str]:
    yield from KNOWN_MODULES
    import vllm

    root = Path(vllm.__file__).parent
    for path in sorted(root.rglob("*.py")):
        try:
            text = path.read_text(errors="ignore")
        except OSError:
            continue
        if re.search(r"^def make_arg_parser\(", text, re.MULTILINE):
            yield "vllm." + ".".join(path.relative_to(root).with_suffix("").parts)


def _parser_class() -> type[argparse.ArgumentParser]:
    for name in PARSER_CLASS_MODULES:
        with contextlib.suppress(ImportError, AttributeError):
            return importlib.import_module(name).FlexibleArgumentParser  # type: ignore[no-any-return]
    raise RuntimeError("FlexibleArgumentParser not found in vllm")


def build_server_parser() -> tuple[argparse.ArgumentParser, ModuleType]:
    """vLLM's OpenAI server parser and the module whose make_arg_parser built it."""
    parser_class = _parser_class()
    tried: list[str] = []
    for name in dict.fromkeys(_candidate_modules()):
        try:
            module = importlib.import_module(name)
            parser = module.make_arg_parser(parser_class())
        except Exception as err:  # noqa: BLE001 - a stale or unrelated candidate: try the next
            tried.append(f"{name}: {type(err).__name__}: {err}")
            continue
        if all(opt in parser._option_string_actions for opt in SERVER_OPTIONS):
            return parser, module
        tried.append(f"{name}: not the OpenAI server parser")
    raise RuntimeError("no make_arg_parser for the OpenAI server found; tried: " + "; ".join(tried))


def _raise_error(message: str) -> None:
    raise ArgError(message)


def _option_name(token: str) -> str:
    """The option a token names, normalised as FlexibleArgumentParser does (underscores to dashes
    before any '.', which starts a nested JSON key; a trailing '+' appends to a list)."""
    name = token.split("=", 1)[0]
    if name.startswith("--"):
        name = "--" + name[2:].split(".", 1)[0].replace("_", "-")
    return name.rstrip("+")


def inexact_options(args: list[str], options: set[str]) -> list[str]:
    """Why each option token is not spelled exactly as vLLM defines it (argparse would accept
    a unique prefix as an abbreviation, so a typo can pass the parser)."""
    problems = []
    for token in args:
        if not token.startswith("-") or token in ("-", "--") or re.match(r"^-\d", token):
            continue  # a value, not an option
        name = _option_name(token)
        if name in options:
            continue
        if not token.startswith("--"):
            if name.startswith("-O"):  # -O3 / -Odecode, rewritten by vLLM's parser
                continue
            if any(len(o) == 2 and token.startswith(o) for o in options if not o.startswith("--")):
                continue  # a one-letter option with its value attached, e.g. -q8
        expansions = sorted(o for o in options if o.startswith(name))
        if expansions:
            problems.append(f"{name} is an abbreviation of {' / '.join(expansions[:5])}")
        else:
            problems.append(f"{name} is not a vLLM option")
    return problems


def _explicit_values(parser: argparse.ArgumentParser, namespace: argparse.Namespace) -> dict[str, Any]:
    defaults = {a.dest: a.default for a in parser._actions}
    values = {}
    for dest, value in vars(namespace).items():
        if dest in defaults and value != defaults[dest]:
            values[dest] = value
    return json.loads(json.dumps(values, default=str))


def check(parser: argparse.ArgumentParser, module: ModuleType, args: list[str]) -> dict[str, Any]:
    options = set(parser._option_string_actions)
    inexact = inexact_options(args, options)
    if inexact:
        return {"ok": False, "error": "; ".join(inexact), "values": {}}
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            namespace = parser.parse_args(list(args))
            validate = getattr(module, "validate_parsed_serve_args", None)
            if validate is not None:
                validate(namespace)
    except ArgError as err:
        return {"ok": False, "error": str(err), "values": {}}
    except SystemExit as err:  # --help or --version: argparse printed and exited
        return {"ok": False, "error": f"parser exited ({err.code}): {out.getvalue().strip()[:500]}", "values": {}}
    except Exception as err:  # noqa: BLE001 - vLLM's validators raise assorted types; all mean "invalid"
        return {"ok": False, "error": f"{type(err).__name__}: {err}", "values": {}}
    return {"ok": True, "error": None, "values": _explicit_values(parser, namespace)}


def main() -> int:
    arg_lists = json.load(sys.stdin)
    noise = io.StringIO()
    with contextlib.redirect_stdout(noise):  # vLLM logs at import; stdout carries only the JSON
        parser, module = build_server_parser()
    parser.error = _raise_error  # type: ignore[method-assign]
    import vllm

    results = [check(parser, module, [str(a) for a in args]) for args in arg_lists]
    json.dump({"vllm_version": vllm.__version__, "parser_module": module.__name__, "results": results}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

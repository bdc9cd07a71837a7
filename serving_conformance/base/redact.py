"""Secrets never reach an artifact, a log the suite keeps, a repr or a traceback.

Objects: Secret data, env values whose names look secret, the last-applied-configuration
annotation (a copy of the whole object, secrets included), and the value after a secret flag in an
argument list. Text (every string of an object, Event messages, pod and testbed logs): secret
flags (`--api-key=X`, `--api-key X`), `Bearer`/`Basic` credentials, the user part of URIs
(`scheme://user:pass@host`), `NAME=value` for secret-looking names, and `key: value` pairs such as
vLLM's own start-up line (`non-default args: {'api_key': [...]}`).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REDACTED = "<redacted>"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Names of env variables, flags and keys whose values are secret.
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
# A secret word ending a name: `api_key`, `hf-token`, `secret`, never `max_tokens` or `tokenizer`.
_WORD = r"[A-Za-z0-9_.-]*(?:api[_-]?key|token|secret|password|passwd|credentials?)"
# Kinds of objects that hold or fetch secrets, as the suite's messages name them (case as written).
_SECRET_KINDS = r"(?-i:(?:Secret|ExternalSecret|ClusterExternalSecret|SealedSecret|PushSecret|SecretStore|ClusterSecretStore)\b)"
_TEXT_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # --api-key=X, --hf-token X (same line only; a flag starts a word: not the `-token` of `hf-token`)
    (re.compile(rf"(?<![\w-])(--?{_WORD})(=|[ \t]+)(?!-)[^\s\"',;]+", re.IGNORECASE), rf"\1\2{REDACTED}"),
    # "--api-key", "X" (an argument list as a rule quotes it)
    (re.compile(rf"""(['"]--?{_WORD}['"][ \t]*,[ \t]*['"])[^'"\n]*(['"])""", re.IGNORECASE), rf"\1{REDACTED}\2"),
    # Authorization: Bearer X, Basic X, wherever they appear
    (re.compile(r"\b(Bearer|Basic)([ \t]+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), rf"\1\2{REDACTED}"),
    # scheme://user:password@host (and a token as the user: https://TOKEN@host)
    (re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@'\"]+@"), rf"\1{REDACTED}@"),
    # 'api_key': ['X'], "token": "X", password: X; never a Kubernetes kind that names secrets
    # ("ExternalSecret: no schema known here", "Secret: hf-token lacks key")
    (re.compile(rf"""(['"]?\b(?!{_SECRET_KINDS}[ \t]*:){_WORD}['"]?[ \t]*[:=][ \t]*)"""
                rf"""(\[?[ \t]*(?:'[^'\n]*'|"[^"\n]*")|[^\s,}}\]'"]+)""", re.IGNORECASE), rf"\1{REDACTED}"),
)


class Secret(str):
    """A secret string: its value where it is used, never in a repr (tracebacks, --showlocals,
    JUnit, assertion messages)."""

    def __repr__(self) -> str:
        return repr(REDACTED)


def redact_text(text: str) -> str:
    for pattern, replacement in _TEXT_RULES:
        text = pattern.sub(replacement, text)
    return text


def _is_secret_flag(arg: Any) -> bool:
    return isinstance(arg, str) and arg.startswith("-") and "=" not in arg and bool(
        re.fullmatch(rf"--?{_WORD}", arg, re.IGNORECASE))


def _redact_list(items: list[Any]) -> list[Any]:
    result: list[Any] = []
    for index, item in enumerate(items):
        after_flag = index > 0 and _is_secret_flag(items[index - 1]) and isinstance(item, str)
        result.append(REDACTED if after_flag else redact(item))
    return result


def redact(obj: Any) -> Any:
    """A copy with Secret data, secret-looking env values, the last-applied annotation, secret
    arguments and credentials in strings replaced; managedFields dropped (noise, and large)."""
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, list):
        return _redact_list(obj)
    if not isinstance(obj, Mapping):
        return obj
    result: dict[Any, Any] = {}
    for key, value in obj.items():
        if key in ("data", "stringData") and obj.get("kind") == "Secret":
            result[key] = {k: REDACTED for k in (value if isinstance(value, Mapping) else {})}
        elif key == "value" and SECRET_NAME.search(str(obj.get("name", ""))) and isinstance(value, str):
            result[key] = REDACTED
        elif key == LAST_APPLIED:
            result[key] = REDACTED  # the whole object again, as applied: secrets included
        else:
            result[key] = redact(value)
    metadata = result.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    return result


def copy_redacted(source: str, destination: str) -> str:
    """A `shutil.copytree` copy_function: text files redacted, anything else copied as is."""
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return shutil.copy2(source, destination)
    Path(destination).write_text(redact_text(text), encoding="utf-8")
    shutil.copystat(source, destination)
    return destination

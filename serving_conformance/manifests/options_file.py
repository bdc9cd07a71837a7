"""The options file a platform repository commits beside its manifests: what its design's paths
serve, so that one run judges a platform that serves the same model under two names the way the
platform intends, and still fails a path that serves a wrong name.

    apiVersion: serving-conformance.dev/v1alpha1
    kind: ConformanceOptions
    servedModelName: qwen2.5-0.5b          # the run's default (--served-model-name wins over it)
    engineVersion: 0.23.0                  # likewise --engine-version
    paths:                                 # the design's paths; the first entry naming an object wins
      - object: InferenceService/kserve/qwen-oci     # Kind/namespace/name or Kind/name, globs allowed
        servedModelName: qwen2.5-0.5b-instruct
      - files: serving/raw-vllm                      # objects written under this path (or glob)
        servedModelName: qwen2.5-0.5b-instruct

Found as `serving-conformance.yaml` at the root of a manifests directory or in the directory the
run starts from, or named with --conformance-options. Read within the same bounds as manifests;
every mistake is one usage error naming the file and the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from serving_conformance.base import yamlsafe
from serving_conformance.base.settings import PathExpectation
from serving_conformance.manifests import files

API_VERSION = "serving-conformance.dev/v1alpha1"
KIND = "ConformanceOptions"
FILE_NAME = "serving-conformance.yaml"
_TOP_KEYS = {"apiVersion", "kind", "servedModelName", "engineVersion", "paths"}
_PATH_KEYS = {"object", "files", "servedModelName", "engineVersion"}


class OptionsFileError(ValueError):
    pass


@dataclass(frozen=True)
class OptionsFile:
    source: Path | None
    served_model_name: str | None
    engine_version: str | None
    paths: tuple[PathExpectation, ...]


def is_options_document(data: Any) -> bool:
    """The suite's own options, never a manifest under test."""
    return isinstance(data, Mapping) and str(data.get("apiVersion", "")).startswith("serving-conformance.dev/")


def discover(roots: Sequence[Path], here: Path) -> Path | None:
    """`serving-conformance.yaml` at a manifests root, else where the run starts."""
    for directory in [*roots, here]:
        candidate = directory / FILE_NAME
        if directory.is_dir() and candidate.is_file():
            return candidate
    return None


def read(path: Path) -> OptionsFile:
    try:
        documents = [d for _, d in yamlsafe.parse_documents(files.read_text(path))]
    except (ValueError, yaml.YAMLError) as exc:
        raise OptionsFileError(f"options file {path}: {_first_line(exc)}") from None
    if len(documents) != 1 or not isinstance(documents[0], Mapping):
        raise OptionsFileError(f"options file {path}: holds one mapping ({KIND}), found {len(documents)} document(s)")
    data = documents[0]
    where = f"options file {path}"
    if data.get("apiVersion") != API_VERSION or data.get("kind") != KIND:
        raise OptionsFileError(f"{where}: needs apiVersion: {API_VERSION} and kind: {KIND}")
    _no_unknown(data, _TOP_KEYS, where)
    entries = data.get("paths") or []
    if not isinstance(entries, list):
        raise OptionsFileError(f"{where}: paths must be a list")
    paths = tuple(_path(entry, i, path.parent, where) for i, entry in enumerate(entries))
    return OptionsFile(path, _text(data, "servedModelName", where), _version(data, where), paths)


def _path(entry: Any, index: int, base: Path, where: str) -> PathExpectation:
    here = f"{where}: paths[{index}]"
    if not isinstance(entry, Mapping):
        raise OptionsFileError(f"{here} must be a mapping")
    _no_unknown(entry, _PATH_KEYS, here)
    if ("object" in entry) == ("files" in entry):
        raise OptionsFileError(f"{here} names exactly one of object (Kind/namespace/name) or files (a path)")
    served, engine = _text(entry, "servedModelName", here), _version(entry, here)
    if served is None and engine is None:
        raise OptionsFileError(f"{here} sets neither servedModelName nor engineVersion")
    if "object" in entry:
        target = _text(entry, "object", here) or ""
        if not 2 <= len(target.split("/")) <= 3 or not all(target.split("/")):
            raise OptionsFileError(f"{here}.object {target!r}: write Kind/namespace/name or Kind/name")
        return PathExpectation(served, engine, object=target)
    written = _text(entry, "files", here) or ""
    full = Path(written) if Path(written).is_absolute() else base / written
    return PathExpectation(served, engine, files=str(full.resolve() if not _is_glob(written) else full))


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _text(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool) or not str(value).strip():
        raise OptionsFileError(f"{where}: {key} must be a non-empty string")
    return str(value).strip()


def _version(data: Mapping[str, Any], where: str) -> str | None:
    value = _text(data, "engineVersion", where)
    return value.lstrip("v") if value else None


def _no_unknown(data: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise OptionsFileError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

"""Seeded faults: broken variants of the manifests under test, each breaking one documented rule.

A fault file names the rule (or cluster behaviour) it breaks, the object it changes and a JSON
patch (RFC 6902: add, remove, replace), or whole files to write. `materialize` copies a manifests
directory and applies the fault, so every negative control is the clean manifests plus one change.
`expect` names words the failure must say (its diagnosis, not any failure), `fails_on` the objects
that fail where that is not the changed one, `also_breaks` other rules the same defect breaks.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from serving_conformance.manifests.load import load_manifests, parse_documents
from serving_conformance.manifests.model import Resource


class FaultError(ValueError):
    pass


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    breaks: str
    target_kind: str | None = None
    target_name: str | None = None
    patch: tuple[Mapping[str, Any], ...] = ()
    files: Mapping[str, str] = field(default_factory=dict)
    # The cluster behaviour this fault must make fail, where a cluster test uses it too.
    cluster: str | None = None
    # Options the run needs for the fault to show (e.g. --gpu-slots=2).
    options: tuple[str, ...] = ()
    # Words the failure message must contain: the failure is the diagnosis, not any crash.
    expect: tuple[str, ...] = ()
    # (kind, name) of the objects whose tests fail, where that is not the target (e.g. a Namespace's
    # label fails the InferenceServices in it).
    fails_on: tuple[tuple[str, str], ...] = ()
    # Other rules the same defect breaks too (their failures need not say `expect`).
    also_breaks: tuple[str, ...] = ()

    @property
    def breaks_nothing(self) -> bool:
        """A control that must leave the verdict as it is."""
        return self.breaks == "none"

    @property
    def target_ident(self) -> str | None:
        if self.target_kind is None:
            return None
        return Resource({"kind": self.target_kind, "metadata": {"name": self.target_name}}, Path(), 0).ident

    @property
    def failing_idents(self) -> tuple[str, ...]:
        """Idents of the objects whose tests must fail: `fails_on`, else the target."""
        named = self.fails_on
        if not named and self.target_kind is not None:
            named = ((self.target_kind, str(self.target_name)),)
        return tuple(Resource({"kind": kind, "metadata": {"name": name}}, Path(), 0).ident for kind, name in named)

    @staticmethod
    def same_object(named: str, ident: str) -> bool:
        """Whether a test id's object is the one named (kind alias and name), whatever namespace it
        renders into, and however often: a test id repeated gets "#2", "#3"...)."""
        alias, _, name = named.partition("/")
        parts = ident.split("/")
        return parts[0] == alias and parts[-1].split("#", 1)[0] == name

    def is_target(self, ident: str) -> bool:
        """Whether a test id's object is one this fault makes fail."""
        return any(self.same_object(named, ident) for named in self.failing_idents)

    @property
    def broken(self) -> set[str]:
        """The behaviours whose tests must fail."""
        return set() if self.breaks_nothing else {self.breaks, *self.also_breaks}


def load_fault(path: Path) -> Fault:
    data = yaml.safe_load(path.read_text())
    target = data.get("target") or {}
    return Fault(
        name=path.stem,
        description=str(data.get("description", "")).strip(),
        breaks=data["breaks"],
        target_kind=target.get("kind"),
        target_name=target.get("name"),
        patch=tuple(data.get("patch") or ()),
        files=data.get("files") or {},
        cluster=data.get("cluster"),
        options=tuple(str(o) for o in data.get("options") or ()),
        expect=tuple(str(e) for e in data.get("expect") or ()),
        fails_on=tuple((str(o["kind"]), str(o["name"])) for o in data.get("fails_on") or ()),
        also_breaks=tuple(str(b) for b in data.get("also_breaks") or ()),
    )


def load_faults(directory: Path) -> list[Fault]:
    return [load_fault(p) for p in sorted(directory.glob("*.yaml"))]


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise FaultError(f"JSON pointer {path!r} must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def _step(node: Any, token: str) -> Any:
    if isinstance(node, list):
        return node[int(token)]
    return node[token]


def apply_patch(document: Any, operations: tuple[Mapping[str, Any], ...]) -> Any:
    """Apply add/remove/replace operations in place; raise FaultError naming a bad path."""
    for operation in operations:
        op, tokens = operation["op"], _pointer(operation["path"])
        try:
            parent = document
            for token in tokens[:-1]:
                parent = _step(parent, token)
            last = tokens[-1]
            if op == "remove":
                del parent[int(last) if isinstance(parent, list) else last]
            elif op == "replace":
                _step(parent, last)  # must exist
                parent[int(last) if isinstance(parent, list) else last] = operation["value"]
            elif op == "add":
                if isinstance(parent, list):
                    parent.insert(len(parent) if last == "-" else int(last), operation["value"])
                else:
                    parent[last] = operation["value"]
            else:
                raise FaultError(f"unsupported op {op!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise FaultError(f"{op} {operation['path']}: no such location ({exc})") from exc
    return document


def materialize(fault: Fault, manifests_dir: Path, destination: Path) -> Path:
    """Copy `manifests_dir` to `destination` with the fault applied; returns `destination`."""
    shutil.copytree(manifests_dir, destination)
    if fault.target_kind:
        manifests = load_manifests(destination)
        target = next(
            (r for r in manifests.resources if r.kind == fault.target_kind and r.name == fault.target_name),
            None,
        )
        if target is None:
            raise FaultError(f"fault {fault.name}: no {fault.target_kind} {fault.target_name} in {manifests_dir}")
        parsed = list(parse_documents(target.path.read_text()))
        documents = [data for _, data in parsed]
        index = [line for line, _ in parsed].index(target.line)
        documents[index] = apply_patch(documents[index], fault.patch)
        target.path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    for relative, text in fault.files.items():
        path = destination / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return destination

"""Kustomizations, rendered the way the platform's tools render them.

A tree of kustomizations is read first (what each includes and consumes), so that only roots are
rendered (an overlay, not also its base), and files a kustomization consumes (patches, generator
inputs) are never read as objects of their own. A root is rendered by kustomize itself, through a
small wrapper kustomization that adds kustomize's origin annotations, so every rendered object
still names the file it came from. Remote resources and Helm charts are never fetched: a root that
needs them is not rendered, and says why.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from serving_conformance.base import proc
from serving_conformance.base.limits import MAX_KUSTOMIZE_BYTES
from serving_conformance.manifests import files

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
ORIGIN_ANNOTATION = "config.kubernetes.io/origin"
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
RENDER_TIMEOUT_S = 120.0
# Keys whose entries are paths a kustomization reads (beyond resources/bases/components).
_PATH_LISTS = ("patchesStrategicMerge", "crds", "configurations", "transformers", "generators", "validators")


def is_remote(entry: str) -> bool:
    return "://" in entry or entry.startswith(("github.com/", "git@", "gitlab.com/", "bitbucket.org/"))


def kustomization_file(directory: Path) -> Path | None:
    return next((directory / n for n in KUSTOMIZATION_NAMES if (directory / n).is_file()), None)


@dataclass
class Kustomization:
    path: Path
    spec: Mapping[str, Any]
    dirs: list[Path] = field(default_factory=list)  # kustomizations it includes (bases, components)
    files: list[Path] = field(default_factory=list)  # files it reads (resources, patches, generator inputs)
    remote: list[str] = field(default_factory=list)
    helm: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # entry -> why it cannot be read

    @property
    def directory(self) -> Path:
        return self.path.parent


def read_kustomization(path: Path, spec: Mapping[str, Any]) -> Kustomization:
    """What a kustomization includes, reads and cannot follow, from its own fields."""
    k = Kustomization(path, spec)
    here = path.parent

    def local(entry: object, *, may_be_dir: bool) -> None:
        text = str(entry)
        if is_remote(text):
            k.remote.append(text)
            return
        target = files.real_path(here / text)
        if isinstance(target, str):  # a loop, a broken link or unreadable
            k.missing[text] = target if target.startswith(("is ", "does ")) else f"is {target}"
        elif may_be_dir and target.is_dir():
            k.dirs.append(target)
        elif target.is_file():
            k.files.append(target)
        else:
            k.missing[text] = "does not exist"

    for key in ("resources", "bases", "components"):
        for entry in _list(spec.get(key)):
            local(entry, may_be_dir=True)
    for key in _PATH_LISTS:
        for entry in _list(spec.get(key)):
            if isinstance(entry, str):
                local(entry, may_be_dir=False)
    for key in ("patches", "patchesJson6902", "replacements"):
        for entry in _list(spec.get(key)):
            if isinstance(entry, Mapping) and isinstance(entry.get("path"), str):
                local(entry["path"], may_be_dir=False)
    for key in ("configMapGenerator", "secretGenerator"):
        for generator in _list(spec.get(key)):
            if not isinstance(generator, Mapping):
                continue
            for source in [*_list(generator.get("files")), *_list(generator.get("envs")), generator.get("env")]:
                if isinstance(source, str):
                    local(source.split("=", 1)[-1], may_be_dir=False)
    for chart in _list(spec.get("helmCharts")):
        if isinstance(chart, Mapping):
            k.helm.append(f"{chart.get('name')} {chart.get('version') or ''}".strip())
    return k


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def closure(root: Kustomization, tree: Mapping[Path, Kustomization]) -> list[Kustomization]:
    """The root and every kustomization it includes, transitively."""
    seen: dict[Path, Kustomization] = {}
    stack = [root]
    while stack:
        current = stack.pop()
        if current.directory in seen:
            continue
        seen[current.directory] = current
        stack.extend(tree[d] for d in current.dirs if d in tree)
    return list(seen.values())


# --- the renderer -----------------------------------------------------------------------------


def find_renderer() -> list[str] | None:
    """kustomize as the suite builds it, else kustomize or kubectl on PATH."""
    from serving_conformance.toolchain.go import cached_kustomize

    built = cached_kustomize()
    if built is not None:
        return [str(built), "build"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


class RenderError(RuntimeError):
    pass


def render(root: Kustomization, renderer: list[str], unrestricted: bool = False) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(source file, object) for each object the root renders to, origin annotations removed;
    `unrestricted`: files outside each kustomization's directory may be read, as Flux builds."""
    with tempfile.TemporaryDirectory(prefix="sc-kustomize-") as tmp:
        wrapper = Path(tmp)
        relative = Path(*[".."] * len(wrapper.resolve().parts[1:])) / root.directory.resolve().relative_to("/")
        (wrapper / "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": [str(relative)], "buildMetadata": ["originAnnotations"],
        }))
        loading = ["--load-restrictor", "LoadRestrictionsNone"] if unrestricted else []
        result = proc.attempt([*renderer, *loading, str(wrapper)], timeout=RENDER_TIMEOUT_S, memory=MAX_KUSTOMIZE_BYTES,
                              env={**os.environ, "GOMEMLIMIT": str(MAX_KUSTOMIZE_BYTES // 2)})
        if result.returncode == 124:
            raise RenderError(f"kustomize ran past {RENDER_TIMEOUT_S:.0f}s and was stopped (the suite's bound)")
        if result.returncode != 0:
            output = result.stderr or result.stdout
            # Go writes "fatal error: out of memory" first, then every goroutine's stack.
            if "fatal error: out of memory" in output or "cannot allocate memory" in output:
                raise RenderError(f"kustomize needed more than the suite's {MAX_KUSTOMIZE_BYTES // 2**20} MiB "
                                  "of address space and stopped (fatal error: out of memory)")
            raise RenderError(_cause_last(proc.tail(output, 12)))
        # kustomize's own output (aliases expanded, inputs read by kustomize): libyaml's loader,
        # many times faster than PyYAML's on a rendered release bundle.
        for document in yaml.load_all(result.stdout, Loader=_FAST_LOADER):
            if isinstance(document, dict):
                yield _origin(document, wrapper, root), document


def _cause_last(text: str, limit: int = 600) -> str:
    """kustomize nests its error through every level it accumulated: the cause is at the end."""
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def _origin(document: dict[str, Any], wrapper: Path, root: Kustomization) -> Path:
    """The file an object came from (kustomize's origin annotation), the annotation removed."""
    meta = document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
    annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
    origin = annotations.pop(ORIGIN_ANNOTATION, None)
    if not annotations and "annotations" in meta:
        del meta["annotations"]
    try:
        data = yaml.safe_load(origin) if origin else None
    except yaml.YAMLError:
        data = None
    path = data.get("path") if isinstance(data, dict) else None
    if isinstance(path, str) and not is_remote(path):
        return (wrapper / path).resolve()
    return root.path

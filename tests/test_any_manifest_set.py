"""Any manifest set a platform engineer points the suite at runs: generated from the example
manifests and the platform repository (hypothesis), by taking any subset of their files, renaming
objects, moving them to other namespaces, splitting and merging files, wrapping kustomizations and
files in overlays, and surrounding them with unrelated objects (Argo CD, KEDA, External Secrets,
Prometheus Operator, a Helm chart, kustomize test fixtures).

For every set: loading never raises, every profile collects (every registered behaviour has its
cases, or one skipped case saying why there is nothing to judge), no rule crashes on any object,
and skips carry reasons. For the sets that only change how the same objects are written (files
split or merged, an overlay around them, unrelated objects beside them) the verdict of every rule
on every object is the one it has on the untouched source.

Examples are derandomized (the same sets every run, so CI is stable); set
SERVING_CONFORMANCE_HYPOTHESIS_SEED to explore others, and raise SERVING_CONFORMANCE_EXAMPLES.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from _pytest.config.argparsing import Parser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving_conformance import behaviours
from serving_conformance.base.data import DEFAULT_MANIFESTS, SUITE
from serving_conformance.checks.static import CRASHED, assert_rule_holds
from serving_conformance.gate import SelectionCrashed
from serving_conformance.manifests.load import load_manifests
from serving_conformance.options import add_options, settings_from
from serving_conformance.rules.context import rule_context
from serving_conformance.rules.findings import RuleContext

REPO = Path(__file__).resolve().parent.parent
SOURCES = {"example": DEFAULT_MANIFESTS, "platform-repo": REPO / "fixtures" / "platform-repo"}
EXAMPLES = int(os.environ.get("SERVING_CONFORMANCE_EXAMPLES", "150"))
SEED = os.environ.get("SERVING_CONFORMANCE_HYPOTHESIS_SEED")
PROFILE = settings(max_examples=EXAMPLES, deadline=None, derandomize=SEED is None, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

UNRELATED = {
    "argocd/extra-app.yaml": [{
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "extra", "namespace": "argocd"},
        "spec": {"project": "default", "source": {"repoURL": "https://example.invalid/x.git", "path": "apps/x"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": "x"}}}],
    "keda/scaledobject.yaml": [{
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "worker", "namespace": "jobs"},
        "spec": {"scaleTargetRef": {"name": "worker"}, "minReplicaCount": 0, "triggers": [{"type": "cron"}]}}],
    "secrets/external.yaml": [{
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": "db", "namespace": "jobs"},
        "spec": {"secretStoreRef": {"kind": "ClusterSecretStore", "name": "vault"}, "target": {"name": "db"},
                 "data": [{"secretKey": "password", "remoteRef": {"key": "db-password"}}]}}],
    "monitoring/rules.yaml": [
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "r", "namespace": "m"},
         "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0"}]}]}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "s", "namespace": "m"},
         "spec": {"selector": {"matchLabels": {"app": "x"}}, "endpoints": [{"port": "http"}]}}],
    "crds/widgets.yaml": [{
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"type": "object", "properties": {
                         "$ref": {"type": "string"}}}}}}}]}}],
    "flux/sync.yaml": [
        {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": "apps", "namespace": "flux-system"},
         "spec": {"interval": "10m", "path": "./apps", "prune": True, "sourceRef": {"kind": "GitRepository", "name": "repo"}}},
        {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"name": "kserve", "namespace": "flux-system"},
         "spec": {"interval": "10m", "chart": {"spec": {"chart": "kserve", "sourceRef": {"kind": "HelmRepository", "name": "k"}}}}}],
    "test/fixtures/case-1/expected/default.kustomization.yaml": [
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": ["../../../x"]}],
    "test/fixtures/case-2/expected/component.yaml": [
        {"apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component", "patches": []}],
}
CHART = {
    "charts/unrelated/Chart.yaml": "apiVersion: v2\nname: unrelated\nversion: 0.1.0\n",
    "charts/unrelated/values.yaml": "replicaCount: 1\nimage: {repository: nginx, tag: latest}\n",
    "charts/unrelated/templates/deployment.yaml":
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  replicas: {{ .Values.replicaCount }}\n",
}


# --- the sources as documents --------------------------------------------------------------------


@dataclass(frozen=True)
class Tree:
    """A manifests tree: every file's text, by relative path."""

    files: dict[str, str]

    def write(self, root: Path) -> Path:
        for relative, text in self.files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root


@cache
def source(name: str) -> Tree:
    root = SOURCES[name]
    return Tree({str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
                 if p.is_file() and ".git" not in p.parts})


@cache
def plain_files(name: str) -> tuple[str, ...]:
    """YAML files read as written (no kustomization consumes them): safe to split, merge, rename in."""
    root = SOURCES[name]
    manifests = load_manifests(root)
    return tuple(sorted({str(r.path.relative_to(root)) for r in manifests.resources
                         if r.via is None and r.path.suffix in (".yaml", ".yml") and r.pseudo_kind is None}))


@cache
def kustomization_roots(name: str) -> tuple[str, ...]:
    """Directories of the kustomizations rendered as roots (an overlay, not its bases)."""
    root = SOURCES[name]
    manifests = load_manifests(root)
    return tuple(sorted({str(r.via.parent.relative_to(root)) for r in manifests.resources if r.via is not None}))


def documents(text: str) -> list:
    """The file's documents; none for a template (a Helm chart's), which no step changes."""
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError:
        return []


def dump(docs: list) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


# --- the variations ------------------------------------------------------------------------------


def split(tree: Tree, relative: str) -> Tree:
    docs = documents(tree.files[relative])
    if len(docs) < 2:
        return tree
    files = dict(tree.files)
    del files[relative]
    stem = relative.rsplit(".", 1)[0]
    for i, doc in enumerate(docs):
        files[f"{stem}-part{i}.yaml"] = dump([doc])
    return Tree(files)


def merge(tree: Tree, first: str, second: str) -> Tree:
    if first == second or Path(first).parent != Path(second).parent:
        return tree
    files = dict(tree.files)
    files[first] = dump(documents(files[first]) + documents(files.pop(second)))
    return Tree(files)


def overlay(tree: Tree, target: str, index: int) -> Tree:
    """A new overlay around `target`: a kustomization root gets an overlay that includes it; a
    plain file's directory gets a kustomization listing its YAML files (kustomize reads no file
    outside its own directory)."""
    files = dict(tree.files)
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
    if target.endswith((".yaml", ".yml")):
        directory = Path(target).parent
        below = [k for k in files if directory in Path(k).parents and Path(k).parent != directory]
        if str(directory / "kustomization.yaml") in files or below:
            return tree  # a kustomization there would own its subdirectories too: another set of objects
        listed = sorted(Path(k).name for k in files if Path(k).parent == directory and k.endswith((".yaml", ".yml")))
        files[str(directory / "kustomization.yaml")] = yaml.safe_dump({**kustomization, "resources": listed})
    else:
        files[f"overlays/wrap-{index}/kustomization.yaml"] = yaml.safe_dump(
            {**kustomization, "resources": [f"../../{target}"]})
    return Tree(files)


def unrelated(tree: Tree, which: list[str], chart: bool) -> Tree:
    files = dict(tree.files)
    for relative in which:
        files[f"unrelated/{relative}"] = dump(UNRELATED[relative])
    if chart:
        files.update({f"unrelated/{k}": v for k, v in CHART.items()})
    return Tree(files)


def subset(tree: Tree, dropped: set[str]) -> Tree:
    return Tree({k: v for k, v in tree.files.items() if k not in dropped})


def rename(tree: Tree, relative: str, index: int, suffix: str) -> Tree:
    docs = documents(tree.files[relative])
    doc = docs[index % len(docs)]
    if isinstance(doc, dict) and isinstance(doc.get("metadata"), dict) and doc["metadata"].get("name"):
        doc["metadata"]["name"] = f"{doc['metadata']['name']}-{suffix}"
    return Tree({**tree.files, relative: dump(docs)})


def move_namespace(tree: Tree, relative: str, namespace: str) -> Tree:
    docs = documents(tree.files[relative])
    for doc in docs:
        if isinstance(doc, dict) and isinstance(doc.get("metadata"), dict) and doc.get("kind") != "Namespace":
            doc["metadata"]["namespace"] = namespace
    return Tree({**tree.files, relative: dump(docs)})


names = st.sampled_from(sorted(SOURCES))
NAMESPACES = st.sampled_from(["team-a", "kserve", "default", "serving", "x" * 63])


@st.composite
def preserving(draw) -> tuple[str, Tree, list[str]]:
    """A source written differently: the same objects, so the same verdicts."""
    name = draw(names)
    tree, steps = source(name), []
    plain = plain_files(name)
    order = ["split", "merge", "unrelated", "overlay"]  # an overlay last: it lists the files as they are then
    chosen = draw(st.lists(st.sampled_from(order), min_size=1, max_size=3))
    for step in sorted(chosen, key=order.index):
        if step == "split" and plain:
            target = draw(st.sampled_from(plain))
            if target in tree.files:
                tree = split(tree, target)
                steps.append(f"split {target}")
        elif step == "merge" and len(plain) > 1:
            first, second = draw(st.sampled_from(plain)), draw(st.sampled_from(plain))
            if first in tree.files and second in tree.files:
                tree = merge(tree, first, second)
                steps.append(f"merge {second} into {first}")
        elif step == "overlay":
            choices = list(kustomization_roots(name)) + [p for p in plain if p in tree.files]
            target = draw(st.sampled_from(choices))
            if not any(s.startswith("overlay ") for s in steps):  # one overlay: a second may include the first
                tree = overlay(tree, target, len(steps))
                steps.append(f"overlay {target}")
        elif step == "unrelated":
            which = draw(st.lists(st.sampled_from(sorted(UNRELATED)), unique=True, min_size=1))
            tree = unrelated(tree, which, draw(st.booleans()))
            steps.append(f"unrelated {which}")
    return name, tree, steps


@st.composite
def any_variant(draw) -> tuple[str, Tree, list[str]]:
    """Anything a repository may hold: the preserving steps, and subsets, renames, other namespaces."""
    name, tree, steps = draw(preserving())
    yaml_files = sorted(k for k in tree.files if k.endswith((".yaml", ".yml")))
    for _ in range(draw(st.integers(0, 3))):
        step = draw(st.sampled_from(["subset", "rename", "namespace"]))
        present = [f for f in yaml_files if f in tree.files]
        if not present:
            break
        target = draw(st.sampled_from(present))
        if step == "subset":
            dropped = set(draw(st.lists(st.sampled_from(present), max_size=max(1, len(present) - 1), unique=True)))
            tree = subset(tree, dropped)
            steps.append(f"drop {sorted(dropped)}")
        elif step == "rename" and documents(tree.files[target]):
            tree = rename(tree, target, draw(st.integers(0, 9)), draw(st.sampled_from(["b", "renamed", "v2"])))
            steps.append(f"rename in {target}")
        elif step == "namespace" and documents(tree.files[target]):
            namespace = draw(NAMESPACES)
            tree = move_namespace(tree, target, namespace)
            steps.append(f"namespace {namespace} for {target}")
    return name, tree, steps


# --- judging ---------------------------------------------------------------------------------------


def context(root: Path) -> RuleContext:
    """The rule context the plugin builds for `pytest --manifests-dir ROOT`."""
    parser = Parser(_ispytest=True)
    add_options(parser)
    option = parser.parse(["--manifests-dir", str(root)])
    config = SimpleNamespace(option=option, invocation_params=SimpleNamespace(dir=root))
    manifests = load_manifests(root)
    return rule_context(manifests, settings_from(config, manifests.pins).expect)


def verdicts(root: Path) -> dict[tuple[str, str], str]:
    """Every static rule's outcome on every object it selects: pass, fail, skip, or crash."""
    ctx = context(root)
    found: dict[tuple[str, str], str] = {}
    for rule in behaviours.static_rules():
        for resource in rule.select(ctx):
            key = (rule.id, f"{resource.ident} {resource.kind}")
            try:
                assert_rule_holds(rule, resource, ctx)
                outcome = "pass"
            except pytest.skip.Exception:
                outcome = "skip"
            except pytest.fail.Exception as exc:
                outcome = "crash" if str(exc).startswith(CRASHED) else "fail"
            found[key] = max(found.get(key, outcome), outcome, key=["pass", "skip", "fail", "crash"].index)
    return found


@cache
def baseline(name: str) -> dict[tuple[str, str], str]:
    with tempfile.TemporaryDirectory() as tmp:
        return verdicts(source(name).write(Path(tmp)))


def collect(pytester: pytest.Pytester, root: Path) -> list[pytest.Item]:
    reprec = pytester.inline_run(str(SUITE), "--collect-only", f"--manifests-dir={root}", "-p", "no:cacheprovider")
    errors = [r for r in reprec.getreports("pytest_collectreport") if r.failed]
    assert not errors, [str(r.longrepr)[:1500] for r in errors]
    assert reprec.ret in (0, pytest.ExitCode.NO_TESTS_COLLECTED) or reprec.ret == pytest.ExitCode.OK, reprec.ret
    return reprec.getcalls("pytest_collection_finish")[0].session.items


def assert_runs(pytester: pytest.Pytester, root: Path, steps: list[str]) -> None:
    crashed = {k: v for k, v in verdicts(root).items() if v == "crash"}
    assert not crashed, (steps, crashed)
    items = collect(pytester, root)
    seen = set()
    for item in items:
        behaviour = item.get_closest_marker("behaviour").args[0]
        seen.add(behaviour.key)
        params = item.callspec.params if hasattr(item, "callspec") else {}
        assert not any(isinstance(v, SelectionCrashed) for v in params.values()), (steps, item.nodeid, params)
        for mark in item.iter_markers("skip"):
            assert mark.kwargs.get("reason"), (steps, item.nodeid)
        if behaviour.layer == behaviours.Layer.CLUSTER:
            assert item.get_closest_marker("cpu") or item.get_closest_marker("gpu"), (steps, item.nodeid)
    assert seen == set(behaviours.REGISTRY), (steps, set(behaviours.REGISTRY) - seen)


@PROFILE
@given(any_variant())
def test_any_variant_loads_collects_and_judges_without_a_crash(pytester, variant):
    name, tree, steps = variant
    with tempfile.TemporaryDirectory() as tmp:
        assert_runs(pytester, tree.write(Path(tmp)), steps)


@PROFILE
@given(preserving())
def test_writing_the_same_objects_differently_keeps_every_verdict(variant):
    name, tree, steps = variant
    with tempfile.TemporaryDirectory() as tmp:
        found = verdicts(tree.write(Path(tmp)))
    expected = baseline(name)
    changed = {k: (expected.get(k), found.get(k)) for k in set(found) | set(expected)
               if found.get(k) != expected.get(k) and k in expected}
    assert not changed, (steps, changed)
    added = {k: v for k, v in found.items() if k not in expected and v != "pass"}
    assert not added, (steps, added)  # the unrelated objects raise no finding


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_the_sources_themselves_run(pytester, name):
    assert_runs(pytester, SOURCES[name], ["as shipped"])


def test_a_copy_keeps_its_verdicts(tmp_path):
    """The baseline is the source as copied into a temporary directory: nothing depends on where."""
    for name in SOURCES:
        shutil.rmtree(tmp_path / name, ignore_errors=True)
        assert verdicts(source(name).write(tmp_path / name)) == baseline(name)

"""Hostile YAML gives one problem with file and line, in bounded time and memory.

The alias bomb is the 461-byte document that, before the bounds, ran `pytest -m static` past its
deadline at gigabytes; the deep documents crashed libyaml 0.2.5's composer (a segfault at 30,000
levels) or kept its scanner busy for seconds.
"""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from serving_conformance.base import yamlsafe
from serving_conformance.base.data import DEFAULT_MANIFESTS, SUITE
from serving_conformance.base.limits import MAX_YAML_ALIASES, MAX_YAML_DEPTH
from serving_conformance.manifests.load import load_manifests, parse_documents

ALIAS_BOMB = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: b}
x:
 a: &a [l,l,l,l,l,l,l,l,l]
 b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
 c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
 d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
 e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
 f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
 g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
 h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
 i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
spec: {template: {spec: {containers: [{name: c, resources: {requests: {cpu: *i}}}]}}}
"""
DEEP = 30_000


def alias_chain(length: int) -> str:
    """Shallow text, deep data: each anchor wraps the previous one in a list."""
    lines = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, length)]
    return "\n".join(lines) + "\n"


HOSTILE = {
    "alias-bomb": (ALIAS_BOMB, "expands to more than"),
    # libyaml 0.2.6 refuses this itself (its own limit is 1,000); older libyaml never gets that deep.
    "flow-nesting": ("[" * DEEP + "]" * DEEP, "nest"),
    "block-nesting": ("- " * DEEP + "x\n", f"nests deeper than {MAX_YAML_DEPTH} levels"),
    "indented-nesting": ("".join(" " * i + "a:\n" for i in range(300)), f"nests deeper than {MAX_YAML_DEPTH} levels"),
    "alias-chain": (alias_chain(DEEP), "(aliases followed)"),
    "many-aliases": ("a: &a x\nb: [" + ",".join(["*a"] * (MAX_YAML_ALIASES + 1)) + "]\n", "aliases"),
    "self-reference": ("a: &a [1, *a]\n", "refers to a node that contains it"),
    "self-reference-in-mapping": ("&a {k: *a}\n", "refers to a node that contains it"),
}


def refused(text: str) -> yaml.MarkedYAMLError:
    with pytest.raises(yaml.MarkedYAMLError) as caught:
        list(parse_documents(text))
    return caught.value


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_yaml_is_refused_quickly_in_little_memory(name):
    text, expected = HOSTILE[name]
    tracemalloc.start()
    started = time.monotonic()
    try:
        error = refused(text)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    assert expected in error.problem, error
    assert error.problem_mark is not None
    assert elapsed < 5, f"{name}: {elapsed:.1f}s"
    assert peak < 64 * 1024 * 1024 + 40 * len(text), f"{name}: peak {peak / 2**20:.0f} MiB"


def test_the_alias_bomb_is_one_problem_with_its_line(tmp_path):
    (tmp_path / "bomb.yaml").write_text(ALIAS_BOMB)
    (tmp_path / "fine.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    manifests = load_manifests(tmp_path)
    assert [r.ident for r in manifests.resources] == ["service/s"]
    [problem] = manifests.problems
    assert problem.path.name == "bomb.yaml" and problem.line == 11, problem
    assert "goes past the suite's YAML bounds" in problem.message and "expands to more than" in problem.message


def test_deep_nesting_never_reaches_the_c_composer():
    """In a fresh interpreter: a crash (libyaml 0.2.5 segfaults at this depth) would kill it."""
    code = (
        "from serving_conformance.base import yamlsafe\n"
        f"for text in ('[' * {DEEP} + ']' * {DEEP}, '- ' * {DEEP} + 'x', '{{a: ' * {DEEP}):\n"
        "    try:\n"
        "        list(yamlsafe.parse_documents(text))\n"
        "    except yamlsafe.yaml.YAMLError as exc:\n"
        "        print(exc.problem)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("nest") == 3, result.stdout


def test_yaml_within_the_bounds_reads_as_pyyaml_reads_it():
    texts = [path.read_text() for path in sorted(DEFAULT_MANIFESTS.rglob("*.yaml"))]
    texts += [
        "a: &x {k: [1, 2.5, true, null, '3']}\nb: *x\nc: {<<: *x, d: 4}\n",
        "--- 1\n--- [a, b]\n---\n",
        "!!binary aGVsbG8=\n",
        "a: &x 1\nb: [*x, *x]\n",
    ]
    for text in texts:
        assert [d for _, d in parse_documents(text)] == list(yaml.load_all(text, Loader=yaml.SafeLoader))
    shared = yamlsafe.load_single("a: &x [1]\nb: *x\n")
    assert shared["a"] is shared["b"]  # an alias is one object, never a copy


def test_the_document_lines_and_single_document_reading():
    assert [line for line, _ in parse_documents("a: 1\n---\n\nb: 2\n")] == [1, 4]
    assert yamlsafe.load_single("") is None
    with pytest.raises(yaml.YAMLError, match="single document"):
        yamlsafe.load_single("a: 1\n---\nb: 2\n")
    with pytest.raises(yaml.YAMLError, match="duplicate anchor"):
        list(parse_documents("a: &x 1\nb: &x 2\n"))
    with pytest.raises(yaml.YAMLError, match="undefined alias"):
        list(parse_documents("a: *nowhere\n"))


def test_the_static_profile_on_an_alias_bomb_fails_one_test_quickly(pytester, tmp_path):
    bomb = tmp_path / "manifests"
    bomb.mkdir()
    (bomb / "bomb.yaml").write_text(ALIAS_BOMB)
    started = time.monotonic()
    result = pytester.runpytest(str(SUITE / "static"), "-m", "static", "--manifests-dir", str(bomb),
                                "-p", "no:cacheprovider", "--tb=long")
    elapsed = time.monotonic() - started
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == 1 and "INTERNALERROR" not in output
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1, output[-3000:]
    assert f"{bomb / 'bomb.yaml'}:11: goes past the suite's YAML bounds" in output
    assert elapsed < 60 and len(output) < 50_000, (elapsed, len(output))


def test_a_huge_file_is_refused_before_it_is_read(tmp_path):
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as handle:
        handle.truncate(17 * 1024 * 1024)  # sparse: costs no disk
    [problem] = load_manifests(tmp_path).problems
    assert "more than the 16,777,216-byte limit" in problem.message


def test_a_kubeconfig_alias_bomb_is_one_provider_error(tmp_path):
    from serving_conformance.cluster.base import ProviderError
    from serving_conformance.providers.existing import ExistingProvider

    from .conftest import base_settings

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(ALIAS_BOMB)
    provider = ExistingProvider(base_settings(cluster="existing", kubeconfig=kubeconfig), tmp_path)
    with pytest.raises(ProviderError, match="cannot read kubeconfig.*expands to more than"):
        provider.read_kubeconfig(Path(kubeconfig))

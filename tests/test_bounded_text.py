"""Failure text about a huge manifest stays small: findings, messages, test ids and reprs are cut."""

from __future__ import annotations

import time

from serving_conformance.base.data import SUITE
from serving_conformance.base.limits import MAX_FINDING_CHARS, MAX_FINDINGS_SHOWN, MAX_IDENT_CHARS, MAX_YAML_ALIASES
from serving_conformance.base.text import clip, short_repr
from serving_conformance.manifests.load import LoadProblem, load_manifests
from serving_conformance.manifests.workloads import all_workloads
from serving_conformance.rules.findings import Finding, Rule


def big_manifest(aliases: int = MAX_YAML_ALIASES - 10, width: int = 1000, containers: int = 300) -> str:
    """Inside every YAML bound, yet about a million nodes once its aliases are followed: the cpu
    request is `aliases` copies of a `width`-item list. Its name is long, and it has many
    containers with tag-pinned images (one finding each)."""
    items = ",".join(["x"] * width)
    refs = ",".join(["*w"] * aliases)
    others = "".join(f"      - {{name: c{i}, image: 'registry.example/img:{i}'}}\n" for i in range(containers))
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {'n' * 5000}}}\n"
        f"x: {{w: &w [{items}]}}\n"
        "spec:\n  template:\n    spec:\n      containers:\n"
        f"      - {{name: big, image: 'registry.example/big:1', resources: {{requests: {{cpu: [{refs}]}}}}}}\n"
        + others
    )


def test_findings_and_messages_are_cut():
    finding = Finding("f" * 100_000, "e" * 100_000, "x")
    assert len(finding.found) < MAX_FINDING_CHARS + 50 and finding.found.endswith("(99,000 more characters)")
    assert len(finding.effect) < MAX_FINDING_CHARS + 50 and finding.fix == "x"
    assert len(LoadProblem(None, None, "m" * 100_000).message) < MAX_FINDING_CHARS + 50
    assert clip("short") == "short"
    rule = Rule("r", "title", lambda r: True, lambda r, c: [], "nothing")
    [resource] = load_manifests_from_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    message = rule.failure_message(resource, [Finding(str(i), "e", "f") for i in range(1000)])
    assert message.count("found:") == MAX_FINDINGS_SHOWN
    assert message.endswith(f"... and {1000 - MAX_FINDINGS_SHOWN} more findings")


def load_manifests_from_text(text: str, tmp_dir=None):
    import tempfile
    from pathlib import Path

    directory = Path(tempfile.mkdtemp())
    (directory / "m.yaml").write_text(text)
    return load_manifests(directory).resources


def test_reprs_never_carry_the_object(tmp_path):
    (tmp_path / "big.yaml").write_text(big_manifest())
    manifests = load_manifests(tmp_path)
    [resource] = manifests.resources
    assert len(repr(resource)) < 300 and "x, x" not in repr(resource)
    assert len(resource.ident) < MAX_IDENT_CHARS + 50
    assert len(repr(manifests)) < 300
    [workload] = all_workloads(manifests)
    assert len(repr(workload)) < 400 and len(repr(workload.containers[0])) < 100
    looped: list = [1]
    looped.append(looped)
    started = time.monotonic()
    assert short_repr(looped).startswith("[1, [1, [1,")
    assert len(short_repr(resource.body)) <= 250 and time.monotonic() - started < 1


def test_a_huge_manifest_fails_with_small_text(pytester, tmp_path):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "big.yaml").write_text(big_manifest())
    junit = tmp_path / "junit.xml"
    started = time.monotonic()
    result = pytester.runpytest(str(SUITE / "static"), "-m", "static", "--manifests-dir", str(manifests),
                                "-p", "no:cacheprovider", "--tb=long", "--showlocals", f"--junitxml={junit}")
    elapsed = time.monotonic() - started
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output and result.ret == 1, output[-3000:]
    assert result.parseoutcomes().get("failed", 0) >= 2  # images-digest-pinned, schema-valid
    assert "more findings" in output and "more characters" in output
    assert len(output) < 300_000, len(output)
    assert junit.stat().st_size < 300_000, junit.stat().st_size
    assert elapsed < 120, elapsed

"""The CI workflows in ci/ are copyable into a platform repository: they install the suite rather
than run this checkout's `./run`, pass the repository's manifests, build nothing on the runner,
and every option they give the suite and `prepare` is one those commands accept."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

WORKFLOWS = sorted((Path(__file__).parent.parent / "ci").glob("*.yaml"))


def commands(workflow: dict) -> list[list[str]]:
    """Each suite command of the workflow's steps, env expanded, as words."""
    env = workflow.get("env") or {}
    found = []
    for step in workflow["jobs"]["conformance"]["steps"]:
        for line in (step.get("run") or "").replace("\\\n", " ").splitlines():
            line = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), line)
            words = shlex.split(line)
            for start, word in enumerate(words):
                if word == "serving-conformance" or word == "serving_conformance.prepare":
                    found.append(words[start:])
    return found


def help_text(*args: str) -> str:
    return subprocess.run([sys.executable, *args, "--help"], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_a_workflow_installs_the_suite_and_uses_only_options_it_accepts(path):
    text = path.read_text()
    assert "./run " not in text, "a platform repository has no ./run"
    workflow = yaml.safe_load(text)
    assert "SUITE" in workflow["env"] and "--manifests-dir=" in workflow["env"]["MANIFESTS"]
    runs = commands(workflow)
    assert any(c[0] == "serving-conformance" for c in runs) and any(c[0] == "serving_conformance.prepare" for c in runs)
    helps = {"serving-conformance": help_text("-m", "serving_conformance.cli"),
             "serving_conformance.prepare": help_text("-m", "serving_conformance.prepare")}
    for words in runs:
        for option in (w.split("=", 1)[0] for w in words if w.startswith("--")):
            accepted = re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", helps[words[0]])
            assert accepted, f"{path.name}: {words[0]} has no option {option}"


def test_the_kind_workflow_fits_a_standard_runner_and_guards_its_context():
    """ubuntu-latest: nothing built (no Go, no root, no cache over its 10 GB), the node image the
    suite pins, the platform from its releases, and the suite allowed the job's cluster only."""
    text = (Path(__file__).parent.parent / "ci/kind-cpu.github.yaml").read_text()
    workflow = yaml.safe_load(text)
    job = workflow["jobs"]["conformance"]
    assert job["runs-on"] == "ubuntu-latest" and job["timeout-minutes"] <= 60
    assert "sudo" not in text and "setup-go" not in text and "actions/cache" not in text and "cache:" not in text
    assert workflow["permissions"] == {"contents": "read"}
    runs = commands(workflow)
    assert any(c[:2] == ["serving_conformance.prepare", "--published-node-image"] for c in runs)
    (cpu,) = [c for c in runs if c[0] == "serving-conformance" and "cpu" in c]
    assert {"--cluster", "existing", "--install-platform"} <= set(cpu)
    assert cpu[cpu.index("--kube-context") + 1] == cpu[cpu.index("--allow-context") + 1] == "kind-conformance"
    assert "sha256sum --check" in text


def test_the_gke_workflow_uses_workload_identity_federation_and_the_context_guard():
    text = (Path(__file__).parent.parent / "ci/gke-gpu.github.yaml").read_text()
    workflow = yaml.safe_load(text)
    assert workflow["permissions"]["id-token"] == "write"
    auth = next(s for s in workflow["jobs"]["conformance"]["steps"] if str(s.get("uses", "")).startswith("google-github-actions/auth"))
    assert set(auth["with"]) == {"workload_identity_provider", "service_account"}, "no stored service account key"
    suite = next(c for c in commands(workflow) if c[0] == "serving-conformance")
    assert suite[suite.index("--kube-context") + 1] == suite[suite.index("--allow-context") + 1]

"""The command line as typed: `pytest -m static --manifests-dir X` and `--manifests-dir=X`, and
`serving-conformance` the same, from the checkout, a subdirectory of it, an empty directory, and
a platform repository with its own pytest configuration (other testpaths, other python_files)
and a subdirectory of it. Each run collects the conformance suite (never the repository's own
tests), judges X, and keeps the rootdir where it belongs; an empty value is a usage error."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SERVING = REPO / "fixtures" / "platform-repo" / "serving"
CLI = [sys.executable, "-m", "serving_conformance.cli"]
PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("invocation")
    platform = root / "platform"
    shutil.copytree(SERVING, platform / "serving")
    (platform / "tests").mkdir()
    (platform / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\npython_files = ["check_*.py"]\naddopts = "-q"\n')
    (platform / "tests" / "check_platform.py").write_text("def test_own():\n    raise AssertionError('OWN TEST RAN')\n")
    (platform / "tests" / "test_platform.py").write_text("def test_own():\n    raise AssertionError('OWN TEST RAN')\n")
    (platform / "sub").mkdir()
    (root / "empty").mkdir()
    return {"checkout": REPO, "checkout-subdir": REPO / "tests", "empty": root / "empty",
            "platform": platform, "platform-subdir": platform / "sub", "manifests": platform / "serving"}


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def relative(manifests: Path, cwd: Path) -> str:
    return str(Path(*[".."] * len(cwd.parts[1:])) / manifests.relative_to("/"))


@pytest.mark.parametrize("form", ["space", "equals"])
@pytest.mark.parametrize("place", ["checkout", "checkout-subdir", "empty", "platform", "platform-subdir"])
@pytest.mark.parametrize("command", ["pytest", "serving-conformance"])
def test_the_static_profile_runs_on_the_named_manifests(places, tmp_path, command, place, form):
    cwd = places[place]
    target = relative(places["manifests"], cwd)  # relative paths are the hard case
    option = ["--manifests-dir", target] if form == "space" else [f"--manifests-dir={target}"]
    report = tmp_path / "report.yaml"
    base = PYTEST if command == "pytest" else CLI
    result = run([*base, "-m", "static", *option, f"--conformance-report={report}"], cwd)
    out = result.stdout + result.stderr
    # It runs (exit 0 or 1, a verdict written): this part of the repository alone holds no KServe
    # configuration, and its options file (naming its paths' two served names) is not beside it.
    assert result.returncode in (0, 1), out[-3000:]
    assert "OWN TEST RAN" not in out
    summary = out.strip().splitlines()[-1]
    assert " passed" in summary and "deselected" in summary and "error" not in summary, summary
    text = report.read_text()
    assert str(places["manifests"]) in text and "result: error" not in text
    if command == "pytest" and place.startswith("checkout"):
        assert f"rootdir: {REPO}" in out, out[:2000]


@pytest.mark.parametrize("command", ["pytest", "serving-conformance"])
@pytest.mark.parametrize("value", [["--manifests-dir="], ["--manifests-dir", ""], ["--manifests-dir", "  "]])
def test_an_empty_manifests_dir_is_a_usage_error(places, command, value):
    base = PYTEST if command == "pytest" else CLI
    result = run([*base, "-m", "static", *value], places["empty"])
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "--manifests-dir needs a directory" in result.stderr


def test_without_manifests_a_repository_keeps_its_own_tests(places):
    """The plugin only takes over collection when the run names manifests: the repository's own
    pytest run is its own."""
    result = run([*PYTEST], places["platform"])
    assert "OWN TEST RAN" in result.stdout

"""The package's shape is kept: imports only go down the layers declared in pyproject.toml
(import-linter), and every conformance test names a registered behaviour."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from serving_conformance import behaviours
from serving_conformance.base.data import SUITE

REPO = Path(__file__).resolve().parent.parent


def test_imports_only_go_down_the_layers():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is a dev dependency (pip install -e '.[dev]')"
    result = subprocess.run([lint, "--no-cache"], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_readme_table_is_the_registry():
    readme = (REPO / "README.md").read_text()
    assert behaviours.markdown_table() in readme, (
        "README's behaviour table differs from serving_conformance.behaviours: paste markdown_table()'s output"
    )


def test_a_conformance_test_without_a_registered_behaviour_is_refused(pytester):
    pytester.makepyfile(test_x="""
import pytest

@pytest.mark.behaviour("free-text")
def test_untracked():
    pass
""")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_untracked*no registered behaviour*"])


def test_a_cluster_test_without_a_profile_is_refused(pytester):
    pytester.makepyfile(test_x="""
import pytest
from serving_conformance import behaviours as B

@pytest.mark.behaviour(B.ISVC_READY)
def test_no_workload():
    pass
""")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_no_workload*needs a profile*"])


def test_every_shipped_conformance_test_collects_with_a_behaviour(pytester):
    result = pytester.runpytest(str(SUITE), "--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()


def test_a_module_over_400_lines_says_why_it_is_one_module():
    import ast

    package = Path(behaviours.__file__).parent
    unexplained = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > 400 and "One module (about" not in (ast.get_docstring(ast.parse(text)) or ""):
            unexplained.append(str(path.relative_to(package)))
    assert not unexplained, unexplained

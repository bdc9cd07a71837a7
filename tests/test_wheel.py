"""The wheel a platform team installs: `pip install .` builds it from the checkout's top level
(conformance/ and manifests/ mapped into the package), and from an empty virtual environment
`serving-conformance -m static` judges a platform repository with nothing of this checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
# Where each top-level directory of the checkout lives inside the wheel.
SHIPPED = {"serving_conformance/": "serving_conformance/", "conformance/": "serving_conformance/suite/",
           "manifests/": "serving_conformance/data/manifests/"}


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files", *SHIPPED], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "__pycache__" not in line]


def missing_from_wheel(tracked: list[str], names: set[str]) -> list[str]:
    """The checkout's files of the package, the suite and the manifests that the wheel lacks."""
    lost = []
    for path in tracked:
        top = next(prefix for prefix in SHIPPED if path.startswith(prefix))
        if SHIPPED[top] + path[len(top):] not in names:
            lost.append(path)
    return lost


def test_a_file_left_out_of_the_wheel_is_named():
    names = {"serving_conformance/plugin.py", "serving_conformance/suite/static/test_a.py"}
    tracked = ["serving_conformance/plugin.py", "conformance/static/test_a.py", "manifests/serving/isvc.yaml"]
    assert missing_from_wheel(tracked, names) == ["manifests/serving/isvc.yaml"]
    assert missing_from_wheel(tracked[:2], names) == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # With build isolation, as `pip install .` builds it.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "-w", str(out), str(REPO)], check=True, timeout=600)
    (built,) = out.glob("serving_conformance-*.whl")
    return built


def test_the_wheel_ships_the_suite_the_manifests_and_nothing_of_the_checkouts_tests(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert missing_from_wheel(_tracked(), names) == []
    assert "serving_conformance/data/kind/cluster.yaml" in names
    assert not [n for n in names if n.startswith(("conformance/", "manifests/", "fixtures/", "tests/", "ci/"))]


def test_an_empty_venv_runs_the_static_profile_in_a_platform_repository(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
                   check=True, timeout=900)
    where = subprocess.run([str(python), "-c", "from serving_conformance.base import data; "
                            "print(data.SUITE); print(data.DEFAULT_MANIFESTS); print(data.KIND_CONFIG.is_file())"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    site = str(env_dir)
    assert where[0].startswith(site) and where[0].endswith("serving_conformance/suite"), where
    assert where[1].startswith(site) and where[1].endswith("serving_conformance/data/manifests"), where
    assert where[2] == "True"
    platform = tmp_path / "platform"
    shutil.copytree(REPO / "fixtures" / "platform-repo", platform)
    result = subprocess.run([str(env_dir / "bin" / "serving-conformance"), "-m", "static", "-q"], cwd=platform,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = yaml.safe_load((platform / "conformance-report.yaml").read_text())
    assert report["result"] == "success" and report["platformUnderTest"][0]["path"] == str(platform)
    # The repository's own tests/ were not collected: only the shipped suite ran.
    assert " passed" in result.stdout and "platform/tests" not in result.stdout


def test_a_checkout_with_an_older_layouts_bytecode_left_reads_the_top_level(tmp_path, monkeypatch):
    """`git pull` over the former layout leaves serving_conformance/suite/__pycache__ (ignored):
    the suite is still read from conformance/; a package directory with files is the wheel's."""
    from serving_conformance.base import data

    package = tmp_path / "serving_conformance"
    (package / "suite" / "static" / "__pycache__").mkdir(parents=True)
    (package / "suite" / "static" / "__pycache__" / "test_x.cpython-311.pyc").write_bytes(b"")
    monkeypatch.setattr(data, "PACKAGE", package)
    assert data._shipped(package / "suite", "conformance") == tmp_path / "conformance"
    (package / "suite" / "pytest.ini").write_text("[pytest]\n")
    assert data._shipped(package / "suite", "conformance") == package / "suite"

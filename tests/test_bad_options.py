"""Bad options and kubeconfigs end the run with one clear error and touch nothing."""

from __future__ import annotations

import pytest

from serving_conformance.base.data import SUITE
from serving_conformance.base.timeouts import Timeouts

STATIC = str(SUITE / "static" / "test_manifests_parse.py")
CLUSTER = str(SUITE / "cluster" / "test_isvc_ready.py")


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "-inf", "x", ""])
def test_a_timeout_must_be_a_finite_positive_number(pytester, value):
    result = pytester.runpytest(STATIC, "-p", "no:cacheprovider", "--timeout", f"isvc_ready={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*bad timeout 'isvc_ready={value}'*"])


def test_a_timeout_from_the_environment_is_checked_too(pytester, monkeypatch):
    monkeypatch.setenv("SERVING_CONFORMANCE_TIMEOUTS", "teardown=nan")
    result = pytester.runpytest(STATIC, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*bad timeout 'teardown=nan'*finite number of seconds above 0*"])


def test_unknown_timeout_names_are_refused_with_the_names():
    with pytest.raises(ValueError, match="api_request.*teardown"):
        Timeouts().overridden(["no_such_wait=3"])


@pytest.mark.parametrize("option", ["--served-model-name", "--engine-version", "--kserve-namespace", "--namespace-prefix"])
def test_empty_names_are_refused(pytester, option):
    result = pytester.runpytest(STATIC, "-p", "no:cacheprovider", f"{option}=")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{option} must not be empty*"])


def test_a_report_into_a_missing_directory_is_refused_and_creates_nothing(pytester, tmp_path):
    missing = tmp_path / "nonexistent" / "dir"
    result = pytester.runpytest(STATIC, "-p", "no:cacheprovider", "--conformance-report", str(missing / "r.yaml"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*the directory {missing} does not exist*"])
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.parametrize("text", ["just a string\n", "- a\n- list\n", "42\n", "a: [unclosed\n", "\xff"])
def test_a_kubeconfig_that_is_not_a_mapping_is_one_error(pytester, tmp_path, text):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_bytes(text.encode("latin-1"))
    result = pytester.runpytest_subprocess(CLUSTER, "-m", "cpu", "-p", "no:cacheprovider", "--cluster", "existing",
                                           "--kubeconfig", str(kubeconfig), "--allow-context", "ci")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret != 0
    assert output.count("cannot provide the cluster") == 1, output
    assert f"kubeconfig {kubeconfig}" in output
    assert "Traceback" not in output and "INTERNALERROR" not in output, output

"""The platform's options file (serving-conformance.yaml): per path of the design, what it serves.
It is found beside the manifests or named, never read as a manifest, and every mistake in it is one
usage error naming the file and the key."""

from pathlib import Path

import pytest

from serving_conformance.base.settings import Expectations, PathExpectation
from serving_conformance.manifests.load import load_manifests
from serving_conformance.manifests.options_file import OptionsFileError, read

HEAD = "apiVersion: serving-conformance.dev/v1alpha1\nkind: ConformanceOptions\n"
REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "serving-conformance.yaml"
    path.write_text(text)
    return path


def test_paths_name_objects_or_files_relative_to_the_file(tmp_path):
    options = read(write(tmp_path, HEAD + "servedModelName: a\nengineVersion: v0.23.0\npaths:\n"
                                          "  - {object: InferenceService/kserve/qwen-oci*, servedModelName: b}\n"
                                          "  - {files: serving/raw, engineVersion: 0.24.0}\n"))
    assert (options.served_model_name, options.engine_version) == ("a", "0.23.0")
    assert options.paths == (PathExpectation("b", None, object="InferenceService/kserve/qwen-oci*"),
                             PathExpectation(None, "0.24.0", files=str(tmp_path / "serving" / "raw")))


class Obj:
    def __init__(self, kind, namespace, name, path):
        self.kind, self.namespace, self.name, self.path = kind, namespace, name, Path(path)


def test_the_first_entry_that_names_an_object_gives_its_expectations():
    expect = Expectations("a", "0.23.0", "0.19.0", "1.34.3", 1, paths=(
        PathExpectation("b", None, object="InferenceService/kserve/qwen-oci*"),
        PathExpectation("c", "0.24.0", files="/repo/serving/raw"),
        PathExpectation("d", None, object="Deployment/raw"),
    ))
    oci = Obj("InferenceService", "kserve", "qwen-oci-next", "/repo/serving/kserve/x.yaml")
    raw = Obj("Deployment", "raw", "raw", "/repo/serving/raw/deployment.yaml")
    other = Obj("Deployment", "raw", "raw", "/repo/serving/rawer/deployment.yaml")
    assert (expect.served_name_for(oci), expect.engine_version_for(oci)) == ("b", "0.23.0")
    assert (expect.served_name_for(raw), expect.engine_version_for(raw)) == ("c", "0.24.0")
    assert expect.served_name_for(other) == "d"  # Kind/name: any namespace
    assert expect.declared_path(Obj("Deployment", "x", "y", "/elsewhere")) is None
    assert expect.served_name_for(Obj("Deployment", "x", "y", "/elsewhere")) == "a"


@pytest.mark.parametrize("text, words", [
    ("kind: ConformanceOptions\n", "needs apiVersion: serving-conformance.dev/v1alpha1"),
    (HEAD + "servedModelNmae: a\n", "unknown key(s) ['servedModelNmae']"),
    (HEAD + "paths: {object: x}\n", "paths must be a list"),
    (HEAD + "paths:\n  - {object: Deployment/a, files: x, servedModelName: b}\n", "exactly one of object"),
    (HEAD + "paths:\n  - {object: Deployment/a}\n", "sets neither servedModelName nor engineVersion"),
    (HEAD + "paths:\n  - {object: a, servedModelName: b}\n", "write Kind/namespace/name or Kind/name"),
    (HEAD + "paths:\n  - {object: Deployment/a, servedModelName: ''}\n", "servedModelName must be a non-empty string"),
    (HEAD + "servedModelName: [a]\n", "servedModelName must be a non-empty string"),
    (HEAD + "a: [\n", "options file"),
    (HEAD + "---\n" + HEAD, "holds one mapping"),
])
def test_every_mistake_names_the_file_and_the_key(tmp_path, text, words):
    with pytest.raises(OptionsFileError) as caught:
        read(write(tmp_path, text))
    assert words in str(caught.value) and str(tmp_path) in str(caught.value)


def test_it_is_never_read_as_a_manifest(tmp_path):
    write(tmp_path, HEAD + "servedModelName: a\n")
    manifests = load_manifests(tmp_path)
    assert manifests.resources == [] and not manifests.problems
    assert [p.message for p in manifests.not_followed] == ["the suite's own options file: not a manifest under test"]


def run(pytester, *args):
    return pytester.runpytest_subprocess(str(REPO / "conformance"), "-m", "static",
                                         "-p", "no:cacheprovider", *args)


def test_a_bad_options_file_is_a_usage_error(pytester, tmp_path):
    write(tmp_path, HEAD + "paths: 3\n")
    result = run(pytester, f"--manifests-dir={REPO / 'serving_conformance' / 'data' / 'manifests'}",
                 f"--conformance-options={tmp_path / 'serving-conformance.yaml'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "paths must be a list" in result.stderr.str()
    missing = run(pytester, "--conformance-options=nowhere.yaml")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR and "no such file" in missing.stderr.str()


def test_the_command_line_wins_over_the_file_and_a_path_entry_over_both(pytester, tmp_path):
    """The file says raw vLLM serves `b`; the example's raw vLLM serves qwen2.5-0.5b: it fails,
    saying the file's path asked for `b`, while the others pass by the command line's name."""
    import shutil

    manifests = tmp_path / "m"
    shutil.copytree(REPO / "manifests", manifests)
    write(manifests, HEAD + "servedModelName: wrong\npaths:\n  - {files: serving/raw-vllm, servedModelName: b}\n")
    result = run(pytester, f"--manifests-dir={manifests}", "--served-model-name=qwen2.5-0.5b", "-k", "engine_identical")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "1 failed" in out and "deployment/raw-vllm" in out
    assert "clients use the name 'b' (the options file's path files" in out

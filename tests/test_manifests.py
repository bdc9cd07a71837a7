"""Finding and reading manifests: recursion, multi-document files, kustomizations, Helm values."""

import textwrap
from pathlib import Path

from serving_conformance.manifests.load import load_manifests
from serving_conformance.manifests.model import HELM_VALUES_KIND
from serving_conformance.manifests.platform_config import find_config

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec: {{}}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_directories_are_walked_and_multi_document_files_split(tmp_path):
    write(tmp_path / "a" / "b" / "two.yaml", DEPLOYMENT.format(name="one") + "---\n" + DEPLOYMENT.format(name="two"))
    write(tmp_path / "list.yml", "apiVersion: v1\nkind: List\nitems:\n  - {apiVersion: v1, kind: Service, metadata: {name: s}}\n")
    manifests = load_manifests(tmp_path)
    assert sorted(r.ident for r in manifests.resources) == ["deployment/one", "deployment/two", "service/s"]
    assert [r.line for r in manifests.resources if r.kind == "Deployment"] == [1, 7]
    assert not manifests.problems


def test_a_kustomization_contributes_only_its_resources(tmp_path):
    write(tmp_path / "kustomization.yaml", "resources:\n  - app.yaml\n  - sub\n  - https://example.com/remote.yaml\n")
    write(tmp_path / "app.yaml", DEPLOYMENT.format(name="listed"))
    write(tmp_path / "patch.yaml", DEPLOYMENT.format(name="a-patch-not-a-resource"))
    write(tmp_path / "sub" / "x.yaml", DEPLOYMENT.format(name="in-sub"))
    manifests = load_manifests(tmp_path)
    assert sorted(r.name for r in manifests.resources) == ["in-sub", "listed"]
    assert any("remote resource" in i.message for i in manifests.not_followed)


def test_a_missing_kustomization_resource_is_a_problem(tmp_path):
    write(tmp_path / "kustomization.yaml", "resources:\n  - gone.yaml\n")
    problems = load_manifests(tmp_path).problems
    assert len(problems) == 1 and "gone.yaml" in problems[0].message


def test_kserve_helm_values_are_the_platform_config(tmp_path):
    write(tmp_path / "values.yaml", """\
        kserve:
          controller:
            deploymentMode: Standard
            gateway:
              disableIstioVirtualHost: true
              ingressGateway: {enableGatewayApi: true, kserveGateway: kserve/kserve-ingress-gateway}
          storage: {enableModelcar: true}
        """)
    manifests = load_manifests(tmp_path)
    assert manifests.resources[0].kind == HELM_VALUES_KIND
    config = find_config(manifests)
    assert config.standard_mode and config.enable_gateway_api and config.disable_istio_virtual_host
    assert config.kserve_ingress_gateway == "kserve/kserve-ingress-gateway" and config.enable_modelcar


def test_bad_input_is_collected_with_file_and_line(tmp_path):
    write(tmp_path / "bad.yaml", "kind: Deployment\nmetadata:\n  name: [x\n")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00bad")
    write(tmp_path / "noname.yaml", "apiVersion: v1\nkind: Service\nmetadata: {}\n")
    problems = {p.path.name: p for p in load_manifests(tmp_path).problems}
    assert problems["bad.yaml"].line == 4 and "not valid YAML" in problems["bad.yaml"].message
    assert "not UTF-8" in problems["binary.yaml"].message
    assert "no metadata.name" in problems["noname.yaml"].message


def test_an_empty_directory_is_a_problem(tmp_path):
    problems = load_manifests(tmp_path).problems
    assert len(problems) == 1 and "holds no YAML" in problems[0].message


def test_an_empty_manifests_dir_fails_one_test_naming_it(pytester, repo, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = pytester.runpytest(str(repo / "serving_conformance" / "suite" / "static"), "-m", "static", "--manifests-dir", str(empty))
    from serving_conformance.behaviours import static_rules

    result.assert_outcomes(failed=1, skipped=len(static_rules()))
    result.stdout.fnmatch_lines([f"*{empty}: holds no YAML manifests*"])

"""Finding and reading manifests: recursion, multi-document files, kustomizations, Helm values."""

import textwrap
from pathlib import Path

import pytest

from serving_conformance.manifests.load import load_manifests
from serving_conformance.manifests.model import HELM_VALUES_KIND
from serving_conformance.manifests.platform_config import find_config
from serving_conformance.rules.context import rule_context

from .conftest import base_settings

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
    write(tmp_path / "kustomization.yaml", "resources:\n  - app.yaml\n  - sub\n")
    write(tmp_path / "app.yaml", DEPLOYMENT.format(name="listed"))
    write(tmp_path / "patch.yaml", DEPLOYMENT.format(name="a-patch-not-a-resource"))
    write(tmp_path / "sub" / "kustomization.yaml", "resources:\n  - x.yaml\n")
    write(tmp_path / "sub" / "x.yaml", DEPLOYMENT.format(name="in-sub"))
    # Below a kustomization, a file no kustomization lists (a scaffold's unused patch) is not part of it.
    write(tmp_path / "patches" / "unused.yaml", DEPLOYMENT.format(name="an-unused-patch"))
    manifests = load_manifests(tmp_path)
    assert sorted(r.name for r in manifests.resources) == ["in-sub", "listed"]
    reasons = {manifests.relative(p.path): p.message for p in manifests.not_followed}
    assert reasons["patches/unused.yaml"] == ("not listed by the kustomization above it (" + tmp_path.name +
                                              "/) (kustomization.yaml): not part of what it renders")
    assert "beside it" in reasons["patch.yaml"]


def test_a_kustomization_that_needs_remote_resources_is_not_judged(tmp_path):
    """Without its remote base it cannot be rendered; its local objects as written lack its
    namespace, labels and patches, so they are listed, not judged (a false alarm otherwise)."""
    write(tmp_path / "kustomization.yaml", "resources:\n  - app.yaml\n  - https://example.com/remote.yaml\n"
                                           "labels:\n  - {pairs: {app: x}, includeSelectors: true}\n")
    write(tmp_path / "app.yaml", DEPLOYMENT.format(name="listed"))
    manifests = load_manifests(tmp_path)
    assert manifests.resources == [] and not manifests.problems
    messages = [i.message for i in manifests.not_followed]
    assert any("remote resource" in m for m in messages)
    assert any("its local resources are not judged" in m for m in messages)


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
    problems = {p.path.name: p for p in rule_context(load_manifests(tmp_path), base_settings().expect).manifests.problems}
    assert problems["bad.yaml"].line == 4 and "not valid YAML" in problems["bad.yaml"].message
    assert "not UTF-8" in problems["binary.yaml"].message
    assert "no metadata.name" in problems["noname.yaml"].message


def test_an_empty_directory_is_a_problem(tmp_path):
    problems = load_manifests(tmp_path).problems
    assert len(problems) == 1 and "holds no YAML" in problems[0].message


def test_an_empty_manifests_dir_fails_one_test_naming_it(pytester, repo, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = pytester.runpytest(str(repo / "conformance" / "static"), "-m", "static", "--manifests-dir", str(empty))
    from serving_conformance.behaviours import static_rules

    result.assert_outcomes(failed=1, skipped=len(static_rules()))
    result.stdout.fnmatch_lines([f"*{empty}: holds no YAML manifests*"])


def test_documents_without_a_name_are_problems_only_where_the_api_server_serves_their_kind(tmp_path):
    write(tmp_path / "service.yaml", "apiVersion: v1\nkind: Service\nmetadata: {}\n")
    write(tmp_path / "job.yaml", "apiVersion: batch/v1\nkind: Job\nmetadata: {generateName: perf-}\nspec: {}\n")
    write(tmp_path / "skaffold.yaml", "apiVersion: skaffold/v2beta29\nkind: Config\nbuild: {}\n")
    write(tmp_path / "report.yaml", "apiVersion: gateway.networking.k8s.io/v1\nkind: ConformanceReport\nmode: x\n")
    write(tmp_path / "istio.yaml", "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec: {}\n")
    context = rule_context(load_manifests(tmp_path), base_settings().expect)
    manifests = context.manifests
    assert [(p.path.name, p.message) for p in manifests.problems] == [("service.yaml", "Service has no metadata.name")]
    assert [r.name for r in manifests.resources] == ["perf-<generated>"]  # kubectl create names it
    skipped = {p.path.name: p.message for p in manifests.not_followed}
    assert set(skipped) == {"skaffold.yaml", "report.yaml", "istio.yaml"}
    assert all("not an object an API server would hold" in m for m in skipped.values())


@pytest.mark.parametrize("text", [
    'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: "{{ .Release.Name }}-config"\n',
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: '{{ .Values.a | quote }}'\n",
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: ${EXTENSION_NAME:-epp}\n",
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  namespace: ${NAMESPACE}\n",
])
def test_templates_are_not_judged_as_objects(tmp_path, text):
    write(tmp_path / "t.yaml", text)
    manifests = load_manifests(tmp_path)
    assert manifests.resources == [] and not manifests.problems
    assert "template" in manifests.not_followed[0].message


def test_kserve_go_templates_in_its_configuration_are_data(tmp_path):
    """KServe's own domainTemplate is a Go template it expands itself: the ConfigMap is judged."""
    write(tmp_path / "c.yaml", 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: inferenceservice-config\n'
                               'data:\n  ingress: \'{"domainTemplate": "{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}"}\'\n')
    assert [r.name for r in load_manifests(tmp_path).resources] == ["inferenceservice-config"]


@pytest.mark.parametrize("name, read", [("values.yaml", True), ("values-prod.yaml", True), ("kserve.values.yaml", True),
                                        ("common-sections.yaml", False), ("kserve-llmisvc-values.yaml", False)])
def test_kserve_values_are_read_from_files_named_as_values(tmp_path, name, read):
    write(tmp_path / name, "kserve:\n  controller: {deploymentMode: Standard}\n  storage: {}\n")
    assert bool(load_manifests(tmp_path).resources) is read


def test_a_component_no_kustomization_uses_is_not_rendered_alone(tmp_path):
    write(tmp_path / "component" / "kustomization.yaml",
          "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nlabels: [{pairs: {a: b}}]\n")
    manifests = load_manifests(tmp_path)
    assert not manifests.problems
    assert "Component" in manifests.not_followed[0].message


def test_yaml_with_an_applications_tags_and_testdata_are_not_manifests(tmp_path):
    write(tmp_path / "mkdocs.yml", "emoji: !!python/name:material.extensions.emoji.twemoji\n")
    write(tmp_path / "pkg" / "testdata" / "broken.yaml", "a: [\n")
    write(tmp_path / "app.yaml", DEPLOYMENT.format(name="app"))
    manifests = load_manifests(tmp_path)
    assert not manifests.problems and [r.name for r in manifests.resources] == ["app"]
    reasons = {manifests.relative(p.path): p.message for p in manifests.not_followed}
    assert "application's tags" in reasons["mkdocs.yml"] and "testdata" in reasons["pkg/testdata"]
    # Pointed at directly, a testdata directory is judged.
    assert load_manifests(tmp_path / "pkg" / "testdata").problems


@pytest.mark.parametrize("text, words", [
    ("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  name: b\n", "found duplicate key 'name'"),
    ("apiVersion: v1\nkind: Service\nmetadata:\n\tname: a\n", "a tab: YAML indents with spaces only"),
])
def test_a_file_kubectl_refuses_is_a_problem_saying_why(tmp_path, text, words):
    write(tmp_path / "x.yaml", text)
    (problem,) = load_manifests(tmp_path).problems
    assert words in problem.message and problem.line in (4, 5)


def test_a_large_file_without_aliases_is_said_to_be_large(tmp_path):
    from serving_conformance.base.limits import MAX_YAML_NODES

    write(tmp_path / "big.yaml", "items:\n" + "".join(f"- {i}\n" for i in range(MAX_YAML_NODES + 10)))
    (problem,) = load_manifests(tmp_path).problems
    assert "holds more than" in problem.message and "alias" not in problem.message


def test_a_kustomization_cycle_fails_with_kustomizes_words(tmp_path):
    write(tmp_path / "a" / "kustomization.yaml", "resources:\n- ../b\n- d.yaml\n")
    write(tmp_path / "b" / "kustomization.yaml", "resources:\n- ../a\n")
    write(tmp_path / "a" / "d.yaml", DEPLOYMENT.format(name="inside-the-cycle"))
    manifests = load_manifests(tmp_path)
    assert manifests.problems and all("cycle detected" in p.message for p in manifests.problems)
    assert manifests.resources == []


def test_an_object_without_kind_or_apiversion_is_a_problem(tmp_path):
    write(tmp_path / "x.yaml", "metadata: {name: x}\nspec: {replicas: 1}\n")
    write(tmp_path / "values.yaml", "spec: {a: 1}\n")  # values of some chart: not an object
    (problem,) = load_manifests(tmp_path).problems
    assert "without apiVersion and kind: kubectl and kustomize refuse it" in problem.message


def test_a_directory_that_holds_only_a_helm_chart_is_listed_not_a_problem(tmp_path):
    write(tmp_path / "chart" / "Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\n")
    write(tmp_path / "chart" / "templates" / "d.yaml", "kind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n")
    manifests = load_manifests(tmp_path)
    assert not manifests.problems and "Helm chart" in manifests.not_followed[0].message
    assert "holds no YAML" in load_manifests(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else tmp_path).problems[0].message


FLUX_SYNC = """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: flux-system, namespace: flux-system}
spec: {interval: 10m, path: %s, prune: true, sourceRef: {kind: GitRepository, name: flux-system}}
"""


def flux_repository(top: Path, flux_path: str, between: bool = False) -> Path:
    """A Flux repository: clusters/dev is built by Flux, its platform/ kustomization lists a file
    of a shared profile two directories up, which plain kustomize refuses to load."""
    write(top / "clusters/dev/flux-system/gotk-sync.yaml", FLUX_SYNC % flux_path)
    write(top / "clusters/dev/flux-system/kustomization.yaml", "resources: [gotk-sync.yaml]\n")
    write(top / "clusters/dev/platform/kustomization.yaml",
          "namespace: serving\nresources: [../../_profiles/configs.yaml]\n")
    write(top / "clusters/_profiles/configs.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\n")
    if between:  # a kustomization Flux builds instead, which does not list platform/
        write(top / "clusters/dev/kustomization.yaml", "resources: [flux-system]\n")
    return top


@pytest.mark.parametrize(("flux_path", "between", "rendered"), [
    ("./clusters/dev", False, True),  # Flux generates clusters/dev's kustomization: platform/ is in it
    ("./clusters/dev/platform", False, True),
    ("/clusters/dev", False, True),  # from the source's root, a leading "/" or not
    ("../clusters/dev", False, False),  # above the source's root: Flux builds nothing there
    ("./clusters/other", False, False),  # no Flux Kustomization builds it: kustomize's rules
    ("./clusters/dev", True, False),  # Flux builds the kustomization in clusters/dev, not platform/
])
def test_a_kustomization_flux_builds_may_read_beside_its_directory(tmp_path, flux_path, between, rendered):
    manifests = load_manifests(flux_repository(tmp_path, flux_path, between))
    shared = [r for r in manifests.resources if r.name == "shared"]
    refused = [p.message for p in manifests.problems if "is not in or below" in p.message]
    assert [r.namespace for r in shared] == (["serving"] if rendered else [])  # listed: never read alone
    assert bool(refused) is not rendered


def test_flux_does_not_widen_what_is_read_beyond_the_manifests_directories(tmp_path):
    flux_repository(tmp_path, "./")  # the Flux path is the manifests root itself
    manifests = load_manifests(tmp_path / "clusters/dev")  # profiles are outside what was asked for
    assert [p.message for p in manifests.problems if "is not in or below" in p.message]
    assert not [r for r in manifests.resources if r.name == "shared"]

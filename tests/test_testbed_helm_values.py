"""Platforms that configure KServe with the kserve-resources Helm chart's values: the testbed
writes the settings the suite reads from them into KServe's ConfigMap, and the live checks pass
on them. KServe's shipped defaults differ on each of these settings (no Gateway API, the Istio
virtual host on), so the live checks would fail if the values were not applied."""

import json
import shutil
from pathlib import Path

import pytest

from serving_conformance.base import versions
from serving_conformance.base.data import DEFAULT_MANIFESTS, SUITE
from serving_conformance.base.upstream import kserve_shipped_configmap
from serving_conformance.manifests.load import load_manifests
from serving_conformance.manifests.model import Resource
from serving_conformance.manifests.platform_config import configmap_for, find_config, read_config

REPO = Path(__file__).resolve().parent.parent

VALUES = """\
kserve:
  controller:
    deploymentMode: Standard
    gateway:
      domain: example.com
      disableIstioVirtualHost: true
      ingressGateway:
        enableGatewayApi: true
        kserveGateway: kserve/kserve-ingress-gateway
  storage:
    enableModelcar: true
"""


def helm_manifests(tmp_path: Path) -> Path:
    """The project's manifests with KServe's ConfigMap replaced by the equivalent Helm values."""
    manifests = tmp_path / "manifests"
    shutil.copytree(DEFAULT_MANIFESTS, manifests)
    (manifests / "platform" / "inferenceservice-config.yaml").unlink()
    (manifests / "platform" / "kustomization.yaml").unlink()
    (manifests / "platform" / "values.yaml").write_text(VALUES)
    return manifests


def test_helm_values_become_the_configmap_keys_they_set(tmp_path):
    config = find_config(load_manifests(helm_manifests(tmp_path)))
    shipped = kserve_shipped_configmap(versions.KSERVE, "kserve")
    rendered = configmap_for(config, shipped)
    assert rendered["metadata"] == {"name": "inferenceservice-config", "namespace": "kserve"}
    assert set(rendered["data"]) == {"deploy", "ingress", "storageInitializer"}
    ingress = json.loads(rendered["data"]["ingress"])
    assert ingress["enableGatewayApi"] is True and ingress["disableIstioVirtualHost"] is True
    # The shipped fields the values do not set are kept: each key is written whole.
    assert ingress["urlScheme"] == json.loads(shipped["data"]["ingress"])["urlScheme"]
    again = read_config(Resource(rendered, tmp_path / "rendered.yaml", 1))
    for attribute in ("deployment_mode", "enable_gateway_api", "kserve_ingress_gateway",
                      "disable_istio_virtual_host", "ingress_domain", "enable_modelcar"):
        assert getattr(again, attribute) == getattr(config, attribute), attribute


@pytest.mark.testbed
def test_the_testbed_runs_kserve_on_the_helm_values(pytester, tmp_path):
    report = tmp_path / "report.json"
    result = pytester.runpytest_subprocess(
        str(SUITE), "--manifests-dir", str(helm_manifests(tmp_path)),
        "--conformance-report", str(report), "--artifacts-dir", str(tmp_path / "artifacts"), "-p", "no:cacheprovider",
        "-m", "cpu", "--cluster", "local", "--local-pods", "simulated",
        "-k", "qwen-cpu and (becomes_ready_in_standard_mode or no_virtualservice_over_the_window or httproute_points)",
    )
    tests = {t["id"].split("::", 1)[1]: t for p in json.loads(report.read_text())["profiles"]
             for b in p["behaviours"] for t in b["tests"]}
    # The other cases of the profile were deselected by -k: listed as not-run, never as passed.
    assert {name: t["outcome"] for name, t in tests.items() if t["outcome"] != "not-run"} == {
        "test_inferenceservice_becomes_ready_in_standard_mode[kserve/qwen-cpu]": "pass",
        "test_no_virtualservice_over_the_window[kserve/qwen-cpu]": "pass",
        "test_httproute_points_at_the_gateway_and_is_accepted[kserve/qwen-cpu]": "pass",
    }, tests
    assert result.ret == 0


def test_on_a_real_cluster_helm_values_are_written_into_the_release_configmap(tmp_path):
    from serving_conformance.cluster.base import Cluster
    from serving_conformance.platform.installer import Installer

    from .conftest import base_settings

    manifests = load_manifests(helm_manifests(tmp_path))
    values = next(r for r in manifests.resources if r.kind == "HelmValues")
    installer = Installer(base_settings(), Cluster("kind", "c", tmp_path / "kubeconfig", None, True), None, manifests,
                          lambda m: None)
    body = installer.configmap_from(values, kserve_shipped_configmap(versions.KSERVE, "kserve"))
    assert body["kind"] == "ConfigMap" and json.loads(body["data"]["ingress"])["enableGatewayApi"] is True

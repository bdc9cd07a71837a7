"""`--cluster existing` on a real cluster the suite did not set up (marker `kind`: root, a container
engine, the node image and the platform's images built here; minutes).

The cluster is booted by the kind provider's `start()` alone (kind create, the pod network, the
simulated GPUs; the platform's images preloaded, as a registry would serve them). The platform is
then installed the way a platform team does it, with kubectl from files: the Gateway API CRDs,
a Gateway API implementation (Traefik) serving the manifests' GatewayClass, KServe's release
(rendered into a file), and the platform's own kustomization (its KServe configuration and its
Gateway). The suite then runs `-m cpu` with `--cluster existing`, its images mapped by
`--image-map=@FILE` as a mirror would be. It must create and delete nothing of the platform, remove
only its run's objects, and name what it found installed, every stand-in among it said so.

    python -m serving_conformance.prepare --for-cluster kind   # once
    python -m pytest tests -m kind -k existing
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from serving_conformance.base import proc
from serving_conformance.base.data import DEFAULT_MANIFESTS, SUITE
from serving_conformance.base.upstream import gateway_api_crds
from serving_conformance.cluster.kube import RUN_LABEL, Kube
from serving_conformance.cluster.releases import TRAEFIK_CONTROLLER, TRAEFIK_NAMESPACE, BuiltHere
from serving_conformance.manifests.load import load_manifests
from serving_conformance.platform.installer import INSTALLED_BY_LABEL, webhook_probe
from serving_conformance.providers.kind import KindProvider

from .conftest import base_settings

pytestmark = pytest.mark.kind

PLATFORM_MANAGER = "platform-team"
# What a platform's own objects are: the suite may read them, never create, change or delete them.
WATCHED = (
    ("v1", "Namespace"), ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("gateway.networking.k8s.io/v1", "GatewayClass"), ("gateway.networking.k8s.io/v1", "Gateway"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"), ("serving.kserve.io/v1beta1", "InferenceService"),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"), ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("apps/v1", "Deployment"), ("apps/v1", "DaemonSet"), ("v1", "Service"), ("v1", "ConfigMap"), ("v1", "Secret"),
)


def write_documents(path: Path, documents: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def with_namespaces(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A release's objects, led by the namespaces they name (KServe's rendered release leaves its own out)."""
    declared = {d["metadata"]["name"] for d in documents if d["kind"] == "Namespace"}
    named = sorted({d["metadata"].get("namespace") for d in documents} - {None} - declared)
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in named] + documents


def platform_files(directory: Path, source: BuiltHere, settings: Any) -> list[Path]:
    """The platform's release files, as a platform repository keeps them: CRDs first."""
    directory.mkdir(parents=True)
    expect = settings.expect
    kserve = source.documents("kserve")
    traefik = source.documents("gateway-controller")
    crds = gateway_api_crds(expect.gateway_api_version, expect.gateway_api_channel)
    crds += [d for d in kserve + traefik if d["kind"] == "CustomResourceDefinition"]
    rest = [d for d in traefik + kserve if d["kind"] != "CustomResourceDefinition"]
    # The platform's Gateway names class agentgateway; this cluster's implementation is Traefik.
    gateway_class = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                     "metadata": {"name": "agentgateway"}, "spec": {"controllerName": TRAEFIK_CONTROLLER}}
    return [write_documents(directory / "00-crds.yaml", crds),
            write_documents(directory / "10-releases.yaml", with_namespaces(rest)),
            write_documents(directory / "20-gatewayclass.yaml", [gateway_class])]


class Kubectl:
    def __init__(self, kubeconfig: Path, context: str) -> None:
        self.base = ["kubectl", "--kubeconfig", str(kubeconfig), "--context", context]

    def __call__(self, *args: str, timeout: float = 300) -> str:
        return proc.run([*self.base, *args], step=f"kubectl {args[0]}", timeout=timeout)

    def webhooks_answer(self, probe: Path, within: float) -> None:
        """KServe's webhooks answer a server-side dry run (nothing to watch for a Service's
        endpoints reaching every node's rules: asked again each second)."""
        deadline = time.monotonic() + within
        while True:
            result = proc.attempt([*self.base, "create", "--dry-run=server", "-f", str(probe)], timeout=60)
            if "failed calling webhook" not in result.stderr:
                return
            assert time.monotonic() < deadline, result.stderr
            time.sleep(1)


def install_as_a_platform_team(kubectl: Kubectl, files: list[Path], tmp: Path, namespace: str) -> None:
    crds, releases, gateway_class = files
    kubectl("apply", "--server-side", "--field-manager", PLATFORM_MANAGER, "-f", str(crds))
    kubectl("wait", "--for", "condition=Established", "crd", "--all", "--timeout", "120s")
    kubectl("apply", "--server-side", "--field-manager", PLATFORM_MANAGER, "-f", str(releases))
    kubectl("apply", "--server-side", "--field-manager", PLATFORM_MANAGER, "-f", str(gateway_class))
    # The platform's own configuration and Gateway, from its kustomization; KServe reads its
    # configuration at start, so the manager is restarted on it.
    kubectl("apply", "--server-side", "--force-conflicts", "--field-manager", "platform-config",
            "-k", str(DEFAULT_MANIFESTS / "platform"))
    kubectl("-n", namespace, "rollout", "restart", "deployment/kserve-controller-manager")
    kubectl("-n", namespace, "rollout", "status", "deployment/kserve-controller-manager", "--timeout", "300s")
    kubectl("-n", TRAEFIK_NAMESPACE, "rollout", "status", "deployment/traefik", "--timeout", "300s")
    probe = write_documents(tmp / "probe.yaml", [webhook_probe(namespace)])
    kubectl.webhooks_answer(probe, 120)


def platform_objects(kube: Kube) -> dict[tuple[str, str, str], tuple[str, Any]]:
    """Every object of the watched kinds: its uid, and its generation (a spec change) or, for
    ConfigMaps and Secrets, its resourceVersion (any change)."""
    seen = {}
    for api_version, kind in WATCHED:
        for obj in kube.list(api_version, kind):
            meta = obj["metadata"]
            assert RUN_LABEL not in (meta.get("labels") or {}), f"{kind} {meta['name']} of a run is left"
            assert INSTALLED_BY_LABEL not in (meta.get("labels") or {}), f"the suite installed {kind} {meta['name']}"
            changed = meta.get("resourceVersion") if kind in ("ConfigMap", "Secret") else meta.get("generation")
            seen[(kind, meta.get("namespace") or "", meta["name"])] = (meta["uid"], changed)
    return seen


def test_the_cpu_profile_passes_on_an_existing_cluster_a_platform_team_set_up(pytester, tmp_path):
    name = f"sc-existing-{secrets.token_hex(3)}"
    settings = base_settings(cluster="kind", cluster_name=name)
    provider = KindProvider(settings, tmp_path / "boot", log=print)
    cluster = provider.start()
    try:
        kubectl = Kubectl(cluster.kubeconfig, cluster.context)
        files = platform_files(tmp_path / "platform", provider.release_source(), settings)
        install_as_a_platform_team(kubectl, files, tmp_path, settings.kserve_namespace)
        image_map = tmp_path / "image-map.txt"
        pairs = provider.image_map_for(load_manifests(DEFAULT_MANIFESTS).resources)
        image_map.write_text("".join(f"{source}={target}\n" for source, target in sorted(pairs.items())))
        kube = Kube(cluster.kubeconfig, cluster.context)
        before = platform_objects(kube)
        report = tmp_path / "report.json"
        result = pytester.runpytest_subprocess(
            str(SUITE), "--manifests-dir", str(DEFAULT_MANIFESTS), "--conformance-report", str(report),
            "--artifacts-dir", str(tmp_path / "artifacts"), "-p", "no:cacheprovider", "-m", "cpu",
            "--cluster", "existing", "--kubeconfig", str(cluster.kubeconfig), "--kube-context", cluster.context,
            "--allow-context", cluster.context, f"--image-map=@{image_map}", "--require-profile", "SERVING-CPU:ran",
            timeout=3600,
        )
        data = json.loads(report.read_text())
        outcomes = {t["id"].split("::", 1)[1]: t["outcome"]
                    for p in data["profiles"] for b in p["behaviours"] for t in b["tests"]}
        assert result.ret == 0 and "fail" not in outcomes.values(), (outcomes, result.stdout.str()[-4000:])
        assert "pass" in outcomes.values()
        # Nothing of the platform created, changed or deleted; the run's own objects all gone.
        assert platform_objects(kube) == before
    finally:
        provider.stop(cluster)
    # What it found installed is named, and every stand-in among it is one in the report.
    observed = data["observed"]
    assert observed["cluster.kserveManager"].startswith("localhost/serving-conformance/kserve-manager"), observed
    assert observed["cluster.gateway"] == ("Gateway kserve/kserve-ingress-gateway: class agentgateway, "
                                           f"controller {TRAEFIK_CONTROLLER}"), observed
    assert "nvidia.com/gpu" in observed["cluster.gpuNodes"], observed
    subjects = {s["subject"] for s in data["substitutions"]}
    assert {"kserve-manager", "gateway", "model", "image", "gpu", "pod-network"} <= subjects, subjects
    cpu = {p["name"]: p for p in data["profiles"]}["SERVING-CPU"]
    assert cpu["circular"] == ["engine-version"] and not cpu["notRun"], cpu
    assert data["result"] == "partial"

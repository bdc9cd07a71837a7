"""The OCI modelcar appears at /mnt/models, as KServe's pod webhook wires it, on the Pod itself.

The injection happens when the Pod is created (not in the Deployment): a `modelcar` sidecar and a
`modelcar-init` check, a shared process namespace, the `kserve-provision-location` volume at /mnt
in both containers, uid 1010. Where containers really run, vLLM reports /mnt/models as the model
root. The control: without a container named kserve-container, pod creation fails.
"""

import copy

import pytest
from kubernetes.client.exceptions import ApiException

from serving_conformance import behaviours as B
from serving_conformance.base.features import Feature
from serving_conformance.checks import Ref, assert_serves_model, is_true
from serving_conformance.manifests.design import MODELCAR_PREDICTORS
from serving_conformance.manifests.workloads import KSERVE_CONTAINER, OCI_DIGEST_URI

pytestmark = [pytest.mark.behaviour(B.MODELCAR_AT_MNT_MODELS), pytest.mark.workloads(MODELCAR_PREDICTORS)]
VOLUME = "kserve-provision-location"


def isvc_pods(kube, namespace, name, timeout):
    return kube.wait_for_any("v1", "Pod", namespace, None, lambda p: True, timeout, f"a pod of {name}",
                             label_selector=f"serving.kserve.io/inferenceservice={name}")


def mounts_at_mnt(container):
    return any(m.get("name") == VOLUME and m.get("mountPath") == "/mnt" for m in container.get("volumeMounts") or [])


@pytest.mark.control_plane
def test_modelcar_is_injected_into_the_pod(workload, deployer, kube, conformance_settings):
    name, namespace = workload.resource.name, deployer.namespace_of(workload.resource)
    deployer.deploy(workload.resource)
    pod = isvc_pods(kube, namespace, name, conformance_settings.timeouts.pod_created)
    spec, where = pod["spec"], f"pod {namespace}/{pod['metadata']['name']}"
    containers = {c["name"]: c for c in spec["containers"]}
    init = {c["name"]: c for c in spec.get("initContainers") or []}
    problems = []
    if "modelcar" not in containers:
        problems.append(f"no modelcar sidecar (containers: {sorted(containers)})")
    if "modelcar-init" not in init:
        problems.append(f"no modelcar-init init container (init containers: {sorted(init)})")
    if not spec.get("shareProcessNamespace"):
        problems.append("shareProcessNamespace is not true: the serving container cannot see the modelcar's files")
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    if "emptyDir" not in volumes.get(VOLUME, {}):
        problems.append(f"no emptyDir volume {VOLUME}")
    for cname in (KSERVE_CONTAINER, "modelcar"):
        container = containers.get(cname)
        if container is None:
            continue
        if not mounts_at_mnt(container):
            problems.append(f"{cname} does not mount {VOLUME} at /mnt")
        if (container.get("securityContext") or {}).get("runAsUser") != 1010:
            problems.append(f"{cname} does not run as uid 1010: {container.get('securityContext')}")
    env = {e["name"]: e.get("value") for e in (containers.get(KSERVE_CONTAINER) or {}).get("env") or []}
    uri = env.get("STORAGE_URI") or ""
    if not OCI_DIGEST_URI.match(uri):
        problems.append(f"STORAGE_URI {uri!r} is not a digest-pinned oci:// URI")
    if "modelcar" in containers and containers["modelcar"].get("image") != uri.removeprefix("oci://"):
        problems.append(f"the modelcar image {containers['modelcar'].get('image')!r} is not the STORAGE_URI image")
    assert not problems, f"{where}: " + "; ".join(problems)


@pytest.mark.requires(Feature.SERVING)
@pytest.mark.compares("model-files")
def test_vllm_serves_what_the_modelcar_holds(workload, deployer, endpoints, kube, pod_files, conformance_settings):
    """vLLM reports /mnt/models as its model root, and the model config it reads there is the one
    the modelcar image holds (same SHA-256, read inside each container)."""
    name, namespace = workload.resource.name, deployer.namespace_of(workload.resource)
    deployer.deploy_ready(workload.resource, conformance_settings.timeouts.isvc_ready)
    service = endpoints.service(namespace, f"{name}-predictor", 80)
    model = assert_serves_model(service, conformance_settings.expect.served_name_for(workload.resource))
    assert model.get("root") == "/mnt/models", (
        f"vLLM of {workload.resource.ident} reports model root {model.get('root')!r}, not /mnt/models"
    )
    pods = [p for p in kube.list("v1", "Pod", namespace, label_selector=f"serving.kserve.io/inferenceservice={name}")
            if is_true(p, "Ready")]
    assert pods, f"no Ready pod of {workload.resource.ident}"
    pod = pods[0]["metadata"]["name"]
    loaded = pod_files.sha256(namespace, pod, KSERVE_CONTAINER, "/mnt/models/config.json")
    held = pod_files.sha256(namespace, pod, "modelcar", "/models/config.json")
    assert loaded == held, (
        f"pod {namespace}/{pod}: /mnt/models/config.json in {KSERVE_CONTAINER} (sha256 {loaded[:12]}) is not the "
        f"modelcar's /models/config.json (sha256 {held[:12]}): vLLM is not serving what the modelcar holds"
    )


@pytest.mark.control_plane
def test_pod_creation_fails_without_kserve_container(workload, deployer, kube, conformance_settings):
    """The predictor pod KServe generates, with kserve-container renamed, is refused by KServe's pod
    webhook. (On the InferenceService a single container is renamed kserve-container by the
    defaulter, so the control goes through the pod the controller would create.)"""
    name, namespace = workload.resource.name, deployer.namespace_of(workload.resource)
    deployer.deploy(workload.resource)
    ref = Ref("apps/v1", "Deployment", f"{name}-predictor", namespace)
    deployment = kube.wait_for(ref, lambda o: o is not None, conformance_settings.timeouts.pod_created, "the predictor Deployment")
    template = copy.deepcopy(deployment["spec"]["template"])
    for container in template["spec"]["containers"]:
        if container["name"] == KSERVE_CONTAINER:
            container["name"] = "vllm"
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{name}-no-kserve-container", "namespace": deployer.namespace,
                     "labels": template["metadata"].get("labels", {}),
                     "annotations": template["metadata"].get("annotations", {})},
        "spec": template["spec"],
    }
    try:
        deployer.create_pod(pod)
    except ApiException as exc:
        message = exc.body or str(exc)
        assert "kserve-container" in message, f"the pod was refused, but not for kserve-container: {message}"
        return
    kube.delete(Ref("v1", "Pod", pod["metadata"]["name"], deployer.namespace), grace_seconds=0)
    pytest.fail(f"a predictor pod of {name} without kserve-container was admitted: KServe's pod webhook did not refuse it",
                pytrace=False)

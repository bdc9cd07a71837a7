"""No Istio: KServe creates no VirtualService and does not look for one; its HTTPRoute is on the gateway.

In Standard mode KServe never creates a VirtualService, but with disableIstioVirtualHost false it
watches for them and, without Istio's CRD, warns VirtualServiceCRDNotFound on every reconcile.
Absence is judged over a window, not at one poll: no VirtualService, in any Istio API version the
cluster serves and in any namespace, that belongs to the InferenceService (its name, an owner
reference, KServe's label, or one of its hosts), and no such warning. Where the cluster serves no
VirtualService API, only the warning half can be judged, and the result says so. The HTTPRoute
must exist, point at the configured gateway, and be accepted by it.
"""

from urllib.parse import urlparse

import pytest

from serving_conformance import behaviours as B
from serving_conformance.base.features import Feature
from serving_conformance.checks import Ref, WaitTimeout, describe_conditions, has_route_parents
from serving_conformance.manifests.design import KSERVE_PREDICTORS

pytestmark = [pytest.mark.behaviour(B.NO_ISTIO), pytest.mark.workloads(KSERVE_PREDICTORS)]
ROUTE_API = "gateway.networking.k8s.io/v1"
ISVC_API = "serving.kserve.io/v1beta1"
ISTIO_GROUP = "networking.istio.io"
ISVC_LABEL = "serving.kserve.io/inferenceservice"


def hosts_of(isvc) -> set[str]:
    status = isvc.get("status") or {}
    urls = [status.get("url"), (status.get("address") or {}).get("url")]
    return {urlparse(u).hostname for u in urls if u} - {None}


def belongs_to(vs, name: str, namespace: str, hosts: set[str]) -> str | None:
    """Why a VirtualService is the InferenceService's, or None."""
    meta = vs.get("metadata") or {}
    if meta.get("name") == name and meta.get("namespace") == namespace:
        return "it has the InferenceService's name"
    if any(o.get("kind") == "InferenceService" and o.get("name") == name for o in meta.get("ownerReferences") or []):
        return "the InferenceService owns it"
    if (meta.get("labels") or {}).get(ISVC_LABEL) == name:
        return f"it carries {ISVC_LABEL}={name}"
    shared = hosts & set((vs.get("spec") or {}).get("hosts") or [])
    if shared:
        return f"it routes the InferenceService's host(s) {sorted(shared)}"
    return None


@pytest.mark.control_plane
def test_no_virtualservice_over_the_window(workload, deployer, kube, conformance_settings, observe, note):
    name, namespace = workload.resource.name, deployer.namespace_of(workload.resource)
    deployer.deploy(workload.resource)
    # The window starts once KServe has reconciled the InferenceService (it reports conditions).
    isvc = kube.wait_for(Ref(ISVC_API, "InferenceService", name, namespace),
                         lambda o: bool(((o or {}).get("status") or {}).get("conditions")),
                         conformance_settings.timeouts.pod_created, "KServe to reconcile the InferenceService")
    hosts = hosts_of(isvc)
    watches = [("v1", "Event", namespace, f"involvedObject.name={name},reason=VirtualServiceCRDNotFound")]
    versions = kube.served_versions(ISTIO_GROUP, "VirtualService")
    watches += [(version, "VirtualService", None, None) for version in versions]
    observe(f"istio.virtualServiceVersions.{workload.resource.ident}", ",".join(versions) or "none served")

    def violation(obj):
        if "involvedObject" in obj:  # an Event
            return (f"KServe warned {obj.get('reason')} for {name}: {obj.get('message')!r}. It is still looking for "
                    "Istio VirtualServices: set disableIstioVirtualHost to true in the ingress config")
        why = belongs_to(obj, name, namespace, hosts)
        if why:
            meta = obj["metadata"]
            return f"a VirtualService {meta.get('namespace')}/{meta.get('name')} exists for {name} ({why}): Istio is in the path"
        return None

    if not versions:
        note("no Istio VirtualService API is served here, so none can exist: only the VirtualServiceCRDNotFound "
             "half was watched")
    kube.consistently(watches, violation, conformance_settings.timeouts.absence_window)


@pytest.mark.requires(Feature.GATEWAY)
def test_httproute_points_at_the_gateway_and_is_accepted(workload, deployer, kube, conformance_settings, endpoints):
    name, namespace = workload.resource.name, deployer.namespace_of(workload.resource)
    deployer.deploy(workload.resource)
    gateway = endpoints.gateway_ref()
    ref = Ref(ROUTE_API, "HTTPRoute", name, namespace)
    route = kube.wait_for(ref, lambda o: o is not None, conformance_settings.timeouts.pod_created, "KServe's HTTPRoute")
    parents = route["spec"].get("parentRefs") or []
    assert any(p.get("name") == gateway.name and p.get("namespace", namespace) == gateway.namespace for p in parents), (
        f"{ref} is attached to {parents}, not to the configured gateway {gateway.namespace}/{gateway.name}"
    )
    try:
        route = kube.wait_for(ref, has_route_parents, conformance_settings.timeouts.gateway_programmed,
                              "a gateway controller's status on the route")
    except WaitTimeout:
        isvc = kube.get(Ref(ISVC_API, "InferenceService", name, namespace))
        pytest.fail(
            f"no gateway controller accepted {ref}: its status has no parents, so KServe's IngressReady stays False "
            f"and the InferenceService is never Ready. InferenceService conditions: {describe_conditions(isvc)}",
            pytrace=False,
        )
    for parent in route["status"]["parents"]:
        bad = [c for c in parent.get("conditions") or [] if c.get("status") == "False"]
        accepted = any(c.get("type") == "Accepted" and c.get("status") == "True" for c in parent.get("conditions") or [])
        assert accepted and not bad, f"{ref} parent {parent.get('parentRef')}: conditions {parent.get('conditions')}"

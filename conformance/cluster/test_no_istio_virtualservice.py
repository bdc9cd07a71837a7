"""No Istio: KServe creates no VirtualService and does not look for one; its HTTPRoute is on the gateway.

In Standard mode KServe never creates a VirtualService, but with disableIstioVirtualHost false it
watches for them and, without Istio's CRD, warns VirtualServiceCRDNotFound on every reconcile.
Absence is judged over a window (no VirtualService for the InferenceService, no such warning), not
at one poll. The HTTPRoute must exist, point at the configured gateway, and be accepted by it.
"""

import pytest

from serving_conformance.cluster.deploy import describe_conditions
from serving_conformance.cluster.kube import Ref, WaitTimeout
from serving_conformance.manifests.workloads import KSERVE_PREDICTORS

pytestmark = [
    pytest.mark.behaviour("no-istio-virtualservice", title="no VirtualService is created or looked for; the HTTPRoute is accepted by the gateway"),
    pytest.mark.workloads(KSERVE_PREDICTORS, hardware=True),
]
ROUTE_API = "gateway.networking.k8s.io/v1"
VIRTUAL_SERVICE_API = "networking.istio.io/v1"


def owned_by(obj, name):
    return any(o.get("kind") == "InferenceService" and o.get("name") == name for o in obj["metadata"].get("ownerReferences") or [])


@pytest.mark.control_plane
def test_no_virtualservice_over_the_window(workload, deployer, kube, conformance_settings):
    name, namespace = workload.resource.name, deployer.namespace
    deployer.deploy(workload.resource)
    # The window starts once KServe has reconciled the InferenceService (it reports conditions).
    kube.wait_for(Ref("serving.kserve.io/v1beta1", "InferenceService", name, namespace),
                  lambda o: bool(((o or {}).get("status") or {}).get("conditions")),
                  conformance_settings.timeouts.pod_created, "KServe to reconcile the InferenceService")
    watches = [("v1", "Event", namespace, f"involvedObject.name={name},reason=VirtualServiceCRDNotFound")]
    if kube.serves(VIRTUAL_SERVICE_API, "VirtualService"):
        watches.append((VIRTUAL_SERVICE_API, "VirtualService", namespace, None))

    def violation(obj):
        if "involvedObject" in obj:  # an Event
            return (f"KServe warned {obj.get('reason')} for {name}: {obj.get('message')!r}. It is still looking for "
                    "Istio VirtualServices: set disableIstioVirtualHost to true in the ingress config")
        if obj["metadata"]["name"] == name or owned_by(obj, name):
            return f"a VirtualService {namespace}/{obj['metadata']['name']} exists for {name}: Istio is in the path"
        return None

    kube.consistently(watches, violation, conformance_settings.timeouts.absence_window)


def test_httproute_points_at_the_gateway_and_is_accepted(workload, deployer, kube, conformance_settings, endpoints):
    name, namespace = workload.resource.name, deployer.namespace
    deployer.deploy(workload.resource)
    gateway = endpoints.gateway_ref()
    ref = Ref(ROUTE_API, "HTTPRoute", name, namespace)
    route = kube.wait_for(ref, lambda o: o is not None, conformance_settings.timeouts.pod_created, "KServe's HTTPRoute")
    parents = route["spec"].get("parentRefs") or []
    assert any(p.get("name") == gateway.name and p.get("namespace", namespace) == gateway.namespace for p in parents), (
        f"{ref} is attached to {parents}, not to the configured gateway {gateway.namespace}/{gateway.name}"
    )
    try:
        route = kube.wait_for(ref, lambda o: bool(((o or {}).get("status") or {}).get("parents")),
                              conformance_settings.timeouts.gateway_programmed, "a gateway controller's status on the route")
    except WaitTimeout:
        isvc = kube.get(Ref("serving.kserve.io/v1beta1", "InferenceService", name, namespace))
        pytest.fail(
            f"no gateway controller accepted {ref}: its status has no parents, so KServe's IngressReady stays False "
            f"and the InferenceService is never Ready. InferenceService conditions: {describe_conditions(isvc)}",
            pytrace=False,
        )
    for parent in route["status"]["parents"]:
        bad = [c for c in parent.get("conditions") or [] if c.get("status") == "False"]
        accepted = any(c.get("type") == "Accepted" and c.get("status") == "True" for c in parent.get("conditions") or [])
        assert accepted and not bad, f"{ref} parent {parent.get('parentRef')}: conditions {parent.get('conditions')}"

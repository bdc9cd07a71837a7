"""A canary split sends each revision its declared share of the requests, through the Gateway.

The revisions are told apart by what they answer (system_fingerprint: engine version and
configuration hash), learnt from each revision on its own first. Then N requests go to the split
and each revision's count is judged with an exact binomial test; N is sized so that a share 5
points off the declared one fails with probability 0.99 while a split served as declared fails
with probability at most 1e-4 (serving_conformance.checks.canary). A revision that receives
nothing, or a split answered by one revision only, fails with that diagnosis. KServe v0.19 ignores
canaryTrafficPercent in Standard mode: a canary declared that way is rolled out in place and the
test says so.
"""

import copy

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import (
    Ref,
    Revision,
    chat,
    count_fingerprints,
    generation,
    has_route_parents,
    judge_split,
    rolled_out_after,
    samples_needed,
)
from serving_conformance.manifests.design import CANARIES
from serving_conformance.manifests.workloads import KSERVE_CONTAINER, split_backends, workloads_of

pytestmark = [pytest.mark.behaviour(B.CANARY_SPLIT), pytest.mark.resources(CANARIES)]


def fingerprint(endpoint, model: str) -> str:
    return str(chat(endpoint, model, max_tokens=1).get("system_fingerprint"))


def measure(endpoint, model: str, revisions: list[Revision], progress) -> dict[str, int]:
    """Answers counted by fingerprint; none where the declaration alone already fails (a revision
    with weight 0 needs no measuring to be refused)."""
    total = sum(r.weight for r in revisions)
    if any(r.weight <= 0 for r in revisions):
        return {}
    samples = samples_needed([r.weight / total for r in revisions])
    progress(f"canary: counting {samples} answers through the Gateway")
    return count_fingerprints(endpoint, model, samples, log=progress)


def test_canary_split_is_served_as_declared(resource, deployer, endpoints, kube, manifests, conformance_settings):
    timeouts = conformance_settings.timeouts
    if resource.kind == "HTTPRoute":
        backends = split_backends(resource, manifests)
        first = next((isvc for isvc, _, _ in backends if isvc is not None), resource)
        model = conformance_settings.expect.served_name_for(first)
        missing = [service for isvc, service, _ in backends if isvc is None]
        assert not missing, f"{resource.ident} routes to {missing}, which are not predictor Services of declared InferenceServices"
        for isvc, _, _ in backends:
            deployer.deploy(isvc)
        revisions = []
        for isvc, _, weight in backends:
            status = deployer.deploy_ready(isvc, timeouts.isvc_ready)
            revisions.append(Revision(isvc.ident, fingerprint(endpoints.gateway(status["status"]["url"]), model), weight))
        deployer.deploy(resource)
        ref = Ref(resource.api_version, "HTTPRoute", resource.name, deployer.namespace_of(resource))
        kube.wait_for(ref, has_route_parents, timeouts.gateway_programmed, "the gateway to accept the split route")
        gateway = endpoints.gateway(f"http://{resource.spec['hostnames'][0]}")
        judge_split(revisions, measure(gateway, model, revisions, deployer.progress))
        return

    # canaryTrafficPercent: roll a changed revision out with it, as a platform would.
    model = conformance_settings.expect.served_name_for(resource)
    percent = int(workloads_of(resource)[0].pod["canaryTrafficPercent"])
    name = f"{resource.name}-canary-percent"
    namespace = deployer.namespace_of(resource)
    first = copy.deepcopy(dict(resource.body))
    first["metadata"] = {"name": name, "namespace": namespace}
    first["spec"]["predictor"].pop("canaryTrafficPercent")
    deployer.apply(first)
    status = deployer.wait_isvc_ready(name, timeouts.isvc_ready, namespace)
    gateway = endpoints.gateway(status["status"]["url"])
    before = Revision("the previous revision", fingerprint(gateway, model), 100 - percent)
    second = copy.deepcopy(dict(resource.body))
    second["metadata"] = {"name": name, "namespace": namespace}
    container = next(c for c in second["spec"]["predictor"]["containers"] if c["name"] == KSERVE_CONTAINER)
    container["args"] = [a for a in container.get("args", []) if not a.startswith("--max-model-len")] + ["--max-model-len=1024"]
    predictor = Ref("apps/v1", "Deployment", f"{name}-predictor", namespace)
    previous = generation(kube.get(predictor))
    deployer.reapply(second)
    kube.wait_for(predictor, rolled_out_after(previous), timeouts.deployment_rollout, "the predictor rollout to finish")
    status = deployer.wait_isvc_ready(name, timeouts.isvc_ready, namespace)
    gateway = endpoints.gateway(status["status"]["url"], converge=True)  # the backends changed
    after = Revision("the canary revision", fingerprint(gateway, model), percent)
    traffic = ((status.get("status") or {}).get("components") or {}).get("predictor", {}).get("traffic")
    diagnosis = (
        f"canaryTrafficPercent: {percent} is ignored in Standard mode by KServe {conformance_settings.expect.kserve_version}: "
        f"the update replaced the one predictor Deployment in place (status traffic: {traffic or 'empty'}). "
        "Declare the split as a weighted HTTPRoute over two InferenceServices instead."
    )
    judge_split([before, after], measure(gateway, model, [before, after], deployer.progress), diagnosis)

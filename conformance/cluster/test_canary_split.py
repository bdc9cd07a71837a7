"""A canary split sends each revision its declared share of the requests, through the Gateway.

The revisions are told apart by what they answer (system_fingerprint: engine version and
configuration hash), learnt from each revision on its own first. N requests are then sent to the
split, and each revision's observed share must lie within 4 standard deviations of its declared
weight (binomial: 4*sqrt(p(1-p)/N) + 1/N). A revision that receives nothing, or a split answered
by one revision only, fails with that diagnosis. KServe v0.19 ignores canaryTrafficPercent in
Standard mode: a canary declared that way is rolled out in place and the test says so.
"""

import copy
import math
from collections import Counter
from dataclasses import dataclass

import pytest

from serving_conformance.cluster.installer import deployment_available
from serving_conformance.cluster.kube import Ref
from serving_conformance.openai_api import Endpoint, chat
from serving_conformance.manifests.workloads import CANARIES, KSERVE_CONTAINER, split_backends, workloads_of

pytestmark = [
    pytest.mark.behaviour("canary-split", title="a canary split sends each revision its declared share of requests"),
    pytest.mark.resources(CANARIES),
    pytest.mark.usefixtures("needs_traffic"),
]
SAMPLES = 200
SIGMAS = 4


@dataclass
class Revision:
    label: str
    fingerprint: str
    weight: int


def fingerprint(endpoint: Endpoint, model: str) -> str:
    return str(chat(endpoint, model, max_tokens=1).get("system_fingerprint"))


def measure(endpoint: Endpoint, model: str, samples: int) -> Counter:
    return Counter(fingerprint(endpoint, model) for _ in range(samples))


def judge(revisions: list[Revision], counts: Counter, samples: int, diagnosis: str = "") -> None:
    labels = {r.fingerprint: r.label for r in revisions}
    if len(labels) < len(revisions):
        pytest.fail(f"the revisions answer with the same fingerprint {revisions}: they cannot be told apart, "
                    "so the split cannot be measured (make the revisions differ in configuration)", pytrace=False)
    table = ", ".join(f"{labels.get(fp, 'unknown ' + fp)}: {n}" for fp, n in counts.most_common())
    unknown = {fp: n for fp, n in counts.items() if fp not in labels}
    assert not unknown, f"{sum(unknown.values())} of {samples} answers came from no declared revision ({table})"
    total = sum(r.weight for r in revisions)
    starved = [r.label for r in revisions if r.weight <= 0]
    if starved:
        pytest.fail(f"the split declares no traffic for {', '.join(starved)} ({table}): a revision with weight 0 "
                    "is not a canary, it never sees a request", pytrace=False)
    declared = [r for r in revisions if r.weight > 0]
    answered = [r for r in revisions if counts[r.fingerprint] > 0]
    if len(declared) > 1 and len(answered) == 1:
        pytest.fail(f"only {answered[0].label} answered all {samples} requests, though the split declares "
                    f"{', '.join(f'{r.label} {r.weight}/{total}' for r in revisions)}. {diagnosis}".strip(), pytrace=False)
    for revision in revisions:
        p = revision.weight / total
        observed = counts[revision.fingerprint] / samples
        tolerance = SIGMAS * math.sqrt(p * (1 - p) / samples) + 1 / samples
        assert abs(observed - p) <= tolerance, (
            f"{revision.label} received {observed:.1%} of {samples} requests, declared {p:.1%} "
            f"(tolerance ±{tolerance:.1%}); counts: {table}. {diagnosis}".strip()
        )


def wait_rolled_out(kube, namespace, name, after_generation, timeout):
    """Until KServe has changed the predictor Deployment and the change is rolled out (Ready alone
    still describes the previous revision right after an update)."""
    kube.wait_for(
        Ref("apps/v1", "Deployment", f"{name}-predictor", namespace),
        lambda o: bool(o) and o["metadata"]["generation"] > after_generation and deployment_available(o),
        timeout, "the predictor rollout to finish",
    )


def test_canary_split_is_served_as_declared(resource, deployer, endpoints, kube, manifests, conformance_settings):
    timeouts = conformance_settings.timeouts
    model = conformance_settings.expect.served_model_name
    if resource.kind == "HTTPRoute":
        backends = split_backends(resource, manifests)
        missing = [service for isvc, service, _ in backends if isvc is None]
        assert not missing, f"{resource.ident} routes to {missing}, which are not predictor Services of declared InferenceServices"
        for isvc, _, _ in backends:
            deployer.deploy(isvc)
        revisions = []
        for isvc, _, weight in backends:
            status = deployer.ready(isvc, timeouts.isvc_ready)
            revisions.append(Revision(isvc.ident, fingerprint(endpoints.gateway(status["status"]["url"]), model), weight))
        deployer.deploy(resource)
        ref = Ref(resource.api_version, "HTTPRoute", resource.name, deployer.namespace)
        kube.wait_for(ref, lambda o: bool(((o or {}).get("status") or {}).get("parents")), timeouts.gateway_programmed,
                      "the gateway to accept the split route")
        hostname = resource.spec["hostnames"][0]
        judge(revisions, measure(endpoints.gateway(f"http://{hostname}"), model, SAMPLES), SAMPLES)
        return

    # canaryTrafficPercent: roll a changed revision out with it, as a platform would.
    percent = int(workloads_of(resource)[0].pod["canaryTrafficPercent"])
    name = f"{resource.name}-canary-percent"
    first = copy.deepcopy(dict(resource.body))
    first["metadata"] = {"name": name}
    first["spec"]["predictor"].pop("canaryTrafficPercent")
    deployer.apply(first)
    status = deployer.ready_isvc(name, timeouts.isvc_ready)
    gateway = endpoints.gateway(status["status"]["url"])
    before = Revision("the previous revision", fingerprint(gateway, model), 100 - percent)
    second = copy.deepcopy(dict(resource.body))
    second["metadata"] = {"name": name}
    container = next(c for c in second["spec"]["predictor"]["containers"] if c["name"] == KSERVE_CONTAINER)
    container["args"] = [a for a in container.get("args", []) if not a.startswith("--max-model-len")] + ["--max-model-len=1024"]
    generation = kube.get(Ref("apps/v1", "Deployment", f"{name}-predictor", deployer.namespace))["metadata"]["generation"]
    deployer.kube.apply(second, namespace=deployer.namespace)
    wait_rolled_out(kube, deployer.namespace, name, generation, timeouts.deployment_rollout)
    status = deployer.ready_isvc(name, timeouts.isvc_ready)
    gateway = endpoints.gateway(status["status"]["url"], converge=True)  # the backends changed
    after = Revision("the canary revision", fingerprint(gateway, model), percent)
    traffic = ((status.get("status") or {}).get("components") or {}).get("predictor", {}).get("traffic")
    diagnosis = (
        f"canaryTrafficPercent: {percent} is ignored in Standard mode by KServe {conformance_settings.expect.kserve_version}: "
        f"the update replaced the one predictor Deployment in place (status traffic: {traffic or 'empty'}). "
        "Declare the split as a weighted HTTPRoute over two InferenceServices instead."
    )
    judge([before, after], measure(gateway, model, SAMPLES), SAMPLES, diagnosis)

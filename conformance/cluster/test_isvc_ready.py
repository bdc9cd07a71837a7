"""The InferenceService becomes Ready in Standard mode, at the URL KServe's domain template gives it.

Ready needs PredictorReady (the predictor Deployment is available) and IngressReady (a gateway
controller accepted KServe's HTTPRoutes); status.deploymentMode reads Standard.
"""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import describe_conditions, is_true
from serving_conformance.manifests.design import KSERVE_PREDICTORS
from serving_conformance.manifests.platform_config import render_host

pytestmark = [pytest.mark.behaviour(B.ISVC_READY), pytest.mark.workloads(KSERVE_PREDICTORS)]


def test_inferenceservice_becomes_ready_in_standard_mode(workload, deployer, conformance_settings, kserve_config):
    name, namespace = workload.resource.name, deployer.namespace_of(workload.resource)
    isvc = deployer.deploy_ready(workload.resource, conformance_settings.timeouts.isvc_ready)
    missing = [c for c in ("Ready", "PredictorReady", "IngressReady") if not is_true(isvc, c)]
    assert not missing, f"{name}: conditions not True: {missing}; {describe_conditions(isvc)}"
    mode = isvc["status"].get("deploymentMode")
    assert mode == "Standard", f"{name}: status.deploymentMode is {mode!r}, not Standard (no Knative, no Istio)"
    expected = kserve_config.host_for(name, namespace) if kserve_config else render_host(None, None, name, namespace)
    url = isvc["status"].get("url", "")
    if expected is not None:
        assert url == f"http://{expected}", f"{name}: status.url is {url!r}, the domain template gives http://{expected}"

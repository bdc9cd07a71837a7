"""GET /v1/models lists the served model name, through the Gateway and through the predictor Service.

Through the Gateway: its address from Gateway.status.addresses, with the Host from the
InferenceService's status.url (KServe's domain template), as the platform's smoke test does.
"""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_serves_model
from serving_conformance.manifests.design import KSERVE_PREDICTORS

pytestmark = [pytest.mark.behaviour(B.SERVED_MODEL_NAME), pytest.mark.workloads(KSERVE_PREDICTORS)]


def test_models_are_listed_through_the_gateway(workload, deployer, endpoints, conformance_settings):
    isvc = deployer.deploy_ready(workload.resource, conformance_settings.timeouts.isvc_ready)
    assert_serves_model(endpoints.gateway(isvc["status"]["url"]), conformance_settings.expect.served_name_for(workload.resource))


def test_models_are_listed_through_the_predictor_service(workload, deployer, endpoints, conformance_settings):
    deployer.deploy_ready(workload.resource, conformance_settings.timeouts.isvc_ready)
    service = endpoints.service(deployer.namespace_of(workload.resource), f"{workload.resource.name}-predictor", 80)
    assert_serves_model(service, conformance_settings.expect.served_name_for(workload.resource))

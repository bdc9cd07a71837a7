"""vLLM, run with the manifest's args, lists the served model name clients use."""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import Endpoint, assert_serves_model
from serving_conformance.manifests.design import DESIGN_VLLM


@pytest.mark.behaviour(B.ENGINE_SERVED_MODEL_NAME)
@pytest.mark.workloads(DESIGN_VLLM)
def test_v1_models_lists_the_served_model_name(workload, local_vllm, conformance_settings):
    endpoint = Endpoint(local_vllm.base_url, api_key=local_vllm.api_key)
    assert_serves_model(endpoint, conformance_settings.expect.served_name_for(workload.resource))

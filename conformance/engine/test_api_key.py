"""With VLLM_API_KEY set (from a Secret), /v1/* answers 401 without the key or with a wrong one, 200 with it."""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import Endpoint, assert_api_key_enforced
from serving_conformance.manifests.design import API_KEY_WORKLOADS


@pytest.mark.behaviour(B.ENGINE_API_KEY)
@pytest.mark.workloads(API_KEY_WORKLOADS)
def test_v1_requires_the_api_key(workload, local_vllm):
    assert_api_key_enforced(Endpoint(local_vllm.base_url), local_vllm.api_key)

"""A chat completion through the Gateway answers 200, and system_fingerprint names the expected vLLM.

The version is parsed from the fingerprint and compared with --engine-version (the design's),
never with the version of what answered.
"""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_engine_version, chat
from serving_conformance.manifests.design import KSERVE_PREDICTORS
from serving_conformance.manifests.workloads import served_name_of

pytestmark = [pytest.mark.behaviour(B.CLUSTER_ENGINE_VERSION), pytest.mark.workloads(KSERVE_PREDICTORS)]


def test_chat_completion_through_the_gateway_names_the_engine(workload, deployer, endpoints, conformance_settings, observe):
    isvc = deployer.deploy_ready(workload.resource, conformance_settings.timeouts.isvc_ready)
    gateway = endpoints.gateway(isvc["status"]["url"])
    response = chat(gateway, served_name_of(workload), max_tokens=16)
    observe(f"vllm.{workload.resource.ident}", response.get("system_fingerprint"))
    assert_engine_version(response, conformance_settings.expect.engine_version_for(workload.resource), f"{workload.resource.ident} through the Gateway")

"""A chat completion through the Gateway answers 200, and system_fingerprint names the expected vLLM.

The version is parsed from the fingerprint. On the local testbed the pods run the local vLLM build
(the image's vLLM cannot run there), and the expected version is that build's, as the report says.
"""

import pytest

from serving_conformance.openai_api import assert_engine_version, chat
from serving_conformance.manifests.workloads import KSERVE_VLLM_PREDICTORS, served_name_of

pytestmark = [
    pytest.mark.behaviour("engine-version", title="a chat completion answers 200 naming the expected vLLM version"),
    pytest.mark.workloads(KSERVE_VLLM_PREDICTORS, hardware=True),
    pytest.mark.usefixtures("needs_traffic"),
]


def test_chat_completion_through_the_gateway_names_the_engine(
    workload, deployer, endpoints, conformance_settings, served_engine_version, observe
):
    isvc = deployer.ready(workload.resource, conformance_settings.timeouts.isvc_ready)
    gateway = endpoints.gateway(isvc["status"]["url"])
    response = chat(gateway, served_name_of(workload), max_tokens=16)
    observe(f"vllm.{workload.resource.ident}", response.get("system_fingerprint"))
    assert_engine_version(response, served_engine_version, f"{workload.resource.ident} through the Gateway")

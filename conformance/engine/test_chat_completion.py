"""A chat completion answers 200 with choices and usage, and names the engine in system_fingerprint.

The engine version is parsed from the fingerprint (vllm-<version>[-tpN/ppN]-<hash>), never compared
as a whole string: the hash part changes with the configuration. The expected version is
--engine-version (the design's), never the version of the engine that answered.
"""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import (
    Endpoint,
    assert_engine_version,
    assert_unknown_model_is_404,
    chat,
    parse_fingerprint,
    stream_fingerprints,
)
from serving_conformance.manifests.design import DESIGN_VLLM
from serving_conformance.manifests.workloads import served_name_of

pytestmark = [pytest.mark.workloads(DESIGN_VLLM)]


def endpoint_of(local_vllm) -> Endpoint:
    return Endpoint(local_vllm.base_url, api_key=local_vllm.api_key)


@pytest.mark.behaviour(B.ENGINE_CHAT)
def test_chat_completion_answers_with_choices_and_usage(workload, local_vllm):
    chat(endpoint_of(local_vllm), served_name_of(workload), max_tokens=16)


@pytest.mark.behaviour(B.ENGINE_VERSION)
def test_fingerprint_names_the_expected_engine(workload, local_vllm, conformance_settings, observe):
    response = chat(endpoint_of(local_vllm), served_name_of(workload), max_tokens=8)
    observe(f"vllm.local.{workload.resource.ident}", response.get("system_fingerprint"))
    assert_engine_version(response, conformance_settings.expect.engine_version_for(workload.resource), f"local vLLM with {workload.label}'s args")


@pytest.mark.behaviour(B.STREAM_FINGERPRINT)
def test_streamed_final_chunk_names_the_same_engine(workload, local_vllm, conformance_settings):
    endpoint = endpoint_of(local_vllm)
    fingerprints = stream_fingerprints(endpoint, served_name_of(workload))
    streamed = parse_fingerprint(fingerprints[-1])
    plain = parse_fingerprint(chat(endpoint, served_name_of(workload), max_tokens=1).get("system_fingerprint"))
    expected = conformance_settings.expect.engine_version_for(workload.resource)
    assert streamed.version == plain.version == expected, (
        f"the stream's final chunk names vLLM {streamed.version} ({streamed.raw!r}), a plain answer names "
        f"{plain.version} ({plain.raw!r}); the design names {expected}"
    )


@pytest.mark.behaviour(B.UNKNOWN_MODEL_404)
def test_unknown_model_answers_404(workload, local_vllm):
    assert_unknown_model_is_404(endpoint_of(local_vllm), served_name_of(workload))

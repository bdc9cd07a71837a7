"""A chat completion answers 200 with choices and usage, and names the engine in system_fingerprint.

The engine version is parsed from the fingerprint (vllm-<version>[-tpN/ppN]-<hash>), never compared
as a whole string: the hash part changes with the configuration.
"""

import pytest

from serving_conformance.openai_api import (
    Endpoint,
    assert_engine_version,
    assert_unknown_model_is_404,
    chat,
    parse_fingerprint,
    stream_fingerprints,
)
from serving_conformance.manifests.workloads import VLLM_WORKLOADS, served_name_of

pytestmark = [pytest.mark.engine, pytest.mark.workloads(VLLM_WORKLOADS)]


def endpoint_of(local_vllm) -> Endpoint:
    return Endpoint(local_vllm.base_url, api_key=local_vllm.api_key)


@pytest.mark.behaviour("chat-completion", title="POST /v1/chat/completions answers 200 with choices and usage")
def test_chat_completion_answers_with_choices_and_usage(workload, local_vllm):
    chat(endpoint_of(local_vllm), served_name_of(workload), max_tokens=16)


@pytest.mark.behaviour("engine-version", title="system_fingerprint names the expected vLLM version")
def test_fingerprint_names_the_expected_engine(workload, local_vllm, locally_served_engine_version):
    response = chat(endpoint_of(local_vllm), served_name_of(workload), max_tokens=8)
    assert_engine_version(response, locally_served_engine_version, f"local vLLM with {workload.label}'s args")


@pytest.mark.behaviour("stream-fingerprint", title="in a stream, the final chunk carries system_fingerprint")
def test_streamed_final_chunk_carries_the_fingerprint(workload, local_vllm):
    fingerprints = stream_fingerprints(endpoint_of(local_vllm), served_name_of(workload))
    parse_fingerprint(fingerprints[-1])


@pytest.mark.behaviour("unknown-model-404", title="a chat completion for an unknown model answers 404")
def test_unknown_model_answers_404(workload, local_vllm):
    assert_unknown_model_is_404(endpoint_of(local_vllm), served_name_of(workload))

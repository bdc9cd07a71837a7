"""Every vLLM serving container has a readiness probe: traffic waits until the model is loaded."""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_rule_holds


@pytest.mark.behaviour(B.VLLM_READINESS)
def test_vllm_readiness_probe(manifest, rule_context):
    assert_rule_holds(B.VLLM_READINESS.rule, manifest, rule_context)

"""The vLLM --port is the declared containerPort, the probes' port and the Service's target.

Without a declared containerPort KServe points the predictor Service and probes at 8080.
"""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_rule_holds


@pytest.mark.behaviour(B.VLLM_PORT)
def test_vllm_listens_where_traffic_and_probes_go(manifest, rule_context):
    assert_rule_holds(B.VLLM_PORT.rule, manifest, rule_context)

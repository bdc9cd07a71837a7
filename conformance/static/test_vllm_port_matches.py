"""The vLLM --port is the declared containerPort, the probes' port and the Service's target.

Without a declared containerPort KServe points the predictor Service and probes at 8080.
"""

import pytest

from serving_conformance.checks.static import assert_rule_holds
from serving_conformance.rules.rules import VLLM_PORT


@pytest.mark.static
@pytest.mark.rule(VLLM_PORT)
def test_vllm_listens_where_traffic_and_probes_go(manifest, rule_context):
    assert_rule_holds(VLLM_PORT, manifest, rule_context)

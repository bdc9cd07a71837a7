"""The rollout strategy of every workload, as rendered, is one the API server accepts."""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_rule_holds


@pytest.mark.behaviour(B.STRATEGY_VALID)
def test_deployment_strategy_valid(manifest, rule_context):
    assert_rule_holds(B.STRATEGY_VALID.rule, manifest, rule_context)

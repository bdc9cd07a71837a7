"""InferenceServices that need KServe's pod webhook live where it mutates pods."""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_rule_holds


@pytest.mark.behaviour(B.POD_WEBHOOK_REACH)
def test_pod_webhook_reaches_predictors(manifest, rule_context):
    assert_rule_holds(B.POD_WEBHOOK_REACH.rule, manifest, rule_context)

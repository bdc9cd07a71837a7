"""The KServe gateway's listeners accept the InferenceServices' and the canary's routes."""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_rule_holds


@pytest.mark.behaviour(B.GATEWAY_ACCEPTS_ROUTES)
def test_gateway_accepts_kserve_routes(manifest, rule_context):
    assert_rule_holds(B.GATEWAY_ACCEPTS_ROUTES.rule, manifest, rule_context)

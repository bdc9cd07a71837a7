"""KServe runs in Standard mode, with the Gateway API on a named gateway, no Istio, the modelcar on."""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_rule_holds


@pytest.mark.behaviour(B.PLATFORM_CONFIG)
def test_kserve_is_configured_as_documented(manifest, rule_context):
    assert_rule_holds(B.PLATFORM_CONFIG.rule, manifest, rule_context)

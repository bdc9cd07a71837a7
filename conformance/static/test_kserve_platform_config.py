"""KServe runs in Standard mode, with the Gateway API on a named gateway, no Istio, the modelcar on."""

import pytest

from serving_conformance.checks.static import assert_rule_holds
from serving_conformance.rules.rules import PLATFORM_CONFIG


@pytest.mark.static
@pytest.mark.rule(PLATFORM_CONFIG)
def test_kserve_is_configured_as_documented(manifest, rule_context):
    assert_rule_holds(PLATFORM_CONFIG, manifest, rule_context)

"""A canary is a weighted split that Standard mode honours, sending traffic to every revision.

KServe v0.19 ignores canaryTrafficPercent in Standard mode; a weighted HTTPRoute over two
predictor Services is the split that works.
"""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_rule_holds


@pytest.mark.behaviour(B.CANARY)
def test_canary_is_a_split_standard_mode_honours(manifest, rule_context):
    assert_rule_holds(B.CANARY.rule, manifest, rule_context)

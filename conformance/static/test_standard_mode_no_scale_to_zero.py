"""A Standard-mode predictor never relies on scaling to zero: minReplicas is at least 1.

KServe v0.19's HPA raises a minReplicas below 1 to 1, so `minReplicas: 0` still runs (and pays
for) a pod; with autoscalerClass none it runs none at all.
"""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_rule_holds


@pytest.mark.behaviour(B.NO_SCALE_TO_ZERO)
def test_standard_mode_predictors_keep_a_replica(manifest, rule_context):
    assert_rule_holds(B.NO_SCALE_TO_ZERO.rule, manifest, rule_context)

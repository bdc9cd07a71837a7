"""Every predictor container that requests cpu or memory sets a limit at least as large.

KServe's defaulting webhook fills each missing resource key with the platform default (cpu 1,
memory 2Gi). `requests.cpu: 2` with no limit becomes `limits.cpu: 1`: the API server rejects the
predictor Deployment and the InferenceService is never Ready.
"""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_rule_holds


@pytest.mark.behaviour(B.LIMITS_COVER_REQUESTS)
def test_every_request_has_a_limit_at_least_as_large(manifest, rule_context):
    assert_rule_holds(B.LIMITS_COVER_REQUESTS.rule, manifest, rule_context)

"""Every predictor container that requests cpu or memory sets a limit at least as large.

KServe's defaulting webhook fills each missing resource key with the platform default (cpu 1,
memory 2Gi). `requests.cpu: 2` with no limit becomes `limits.cpu: 1`: the API server rejects the
predictor Deployment and the InferenceService is never Ready.
"""

import pytest

from serving_conformance.checks.static import assert_rule_holds
from serving_conformance.rules.rules import LIMITS_COVER_REQUESTS


@pytest.mark.static
@pytest.mark.rule(LIMITS_COVER_REQUESTS)
def test_every_request_has_a_limit_at_least_as_large(manifest, rule_context):
    assert_rule_holds(LIMITS_COVER_REQUESTS, manifest, rule_context)

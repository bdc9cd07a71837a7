"""Every object validates against the schemas of the pinned releases; an unknown field is an error.

Core kinds against Kubernetes' published OpenAPI schemas, KServe and Gateway API objects against
their CRDs, Helm values against the chart's values. Where a schema cannot be obtained on this
machine, the test is skipped with the reason and the report says partial.
"""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_rule_holds


@pytest.mark.behaviour(B.SCHEMA)
def test_object_matches_the_pinned_schema(manifest, rule_context):
    assert_rule_holds(B.SCHEMA.rule, manifest, rule_context)

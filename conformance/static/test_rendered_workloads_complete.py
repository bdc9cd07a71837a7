"""Every container of every workload, as rendered, names its image."""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_rule_holds


@pytest.mark.behaviour(B.CONTAINERS_COMPLETE)
def test_rendered_workloads_complete(manifest, rule_context):
    assert_rule_holds(B.CONTAINERS_COMPLETE.rule, manifest, rule_context)

"""Every Secret key a container reads exists in the Secret the manifests declare."""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_rule_holds


@pytest.mark.behaviour(B.SECRET_REFS_RESOLVE)
def test_secret_refs_resolve(manifest, rule_context):
    assert_rule_holds(B.SECRET_REFS_RESOLVE.rule, manifest, rule_context)

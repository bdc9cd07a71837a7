"""Every image is pinned by digest, so the cluster runs exactly what was verified."""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_rule_holds


@pytest.mark.behaviour(B.IMAGES_PINNED)
def test_every_image_is_pinned_by_digest(manifest, rule_context):
    assert_rule_holds(B.IMAGES_PINNED.rule, manifest, rule_context)

"""Every image is pinned by digest, so the cluster runs exactly what was verified."""

import pytest

from serving_conformance.checks.static import assert_rule_holds
from serving_conformance.rules.rules import IMAGES_PINNED


@pytest.mark.static
@pytest.mark.rule(IMAGES_PINNED)
def test_every_image_is_pinned_by_digest(manifest, rule_context):
    assert_rule_holds(IMAGES_PINNED, manifest, rule_context)

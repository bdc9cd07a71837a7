"""The predictor is a custom container named kserve-container, never `model` and `containers` at once.

A custom container runs vLLM's own arguments verbatim. KServe wires storage, probes and the
modelcar to the container named kserve-container, and rejects `model` combined with `containers`.
"""

import pytest

from serving_conformance.checks.static import assert_rule_holds
from serving_conformance.rules.rules import CUSTOM_CONTAINER


@pytest.mark.static
@pytest.mark.rule(CUSTOM_CONTAINER)
def test_custom_predictor_container_is_named_kserve_container(manifest, rule_context):
    assert_rule_holds(CUSTOM_CONTAINER, manifest, rule_context)

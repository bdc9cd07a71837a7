"""The predictor is a custom container named kserve-container, never `model` and `containers` at once.

A custom container runs vLLM's own arguments verbatim. KServe wires storage, probes and the
modelcar to the container named kserve-container, and rejects `model` combined with `containers`.
"""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_rule_holds


@pytest.mark.behaviour(B.CUSTOM_CONTAINER)
def test_custom_predictor_container_is_named_kserve_container(manifest, rule_context):
    assert_rule_holds(B.CUSTOM_CONTAINER.rule, manifest, rule_context)

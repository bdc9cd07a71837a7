"""The raw-vLLM control and the KServe path run the same vLLM version and serve the same model.

The raw Deployment is the control benchmark: it only measures the serving layer if the engine and
the model name are the same on both paths.
"""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_rule_holds


@pytest.mark.behaviour(B.ENGINE_IDENTICAL)
def test_every_path_runs_the_expected_engine_and_model(manifest, rule_context):
    assert_rule_holds(B.ENGINE_IDENTICAL.rule, manifest, rule_context)

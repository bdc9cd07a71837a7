"""The raw-vLLM control and the KServe path run the same vLLM version and serve the same model.

The raw Deployment is the control benchmark: it only measures the serving layer if the engine and
the model name are the same on both paths.
"""

import pytest

from serving_conformance.checks.static import assert_rule_holds
from serving_conformance.rules.rules import ENGINE_IDENTICAL


@pytest.mark.static
@pytest.mark.rule(ENGINE_IDENTICAL)
def test_every_path_runs_the_expected_engine_and_model(manifest, rule_context):
    assert_rule_holds(ENGINE_IDENTICAL, manifest, rule_context)

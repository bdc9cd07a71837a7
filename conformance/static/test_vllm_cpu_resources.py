"""vLLM CPU containers request at least 2 cpu and never bind OpenMP threads to all cores."""

import pytest

from serving_conformance.checks.static import assert_rule_holds
from serving_conformance.rules.rules import VLLM_CPU


@pytest.mark.static
@pytest.mark.rule(VLLM_CPU)
def test_vllm_on_cpu_has_two_cores_and_no_global_binding(manifest, rule_context):
    assert_rule_holds(VLLM_CPU, manifest, rule_context)

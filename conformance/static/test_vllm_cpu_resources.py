"""vLLM CPU containers request at least 2 cpu and never bind OpenMP threads to all cores."""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_rule_holds


@pytest.mark.behaviour(B.VLLM_CPU)
def test_vllm_on_cpu_has_two_cores_and_no_global_binding(manifest, rule_context):
    assert_rule_holds(B.VLLM_CPU.rule, manifest, rule_context)

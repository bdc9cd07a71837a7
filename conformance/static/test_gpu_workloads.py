"""GPU workloads request nvidia.com/gpu and use Recreate where only one GPU slot exists."""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_rule_holds


@pytest.mark.behaviour(B.GPU_WORKLOADS)
def test_gpu_workloads_request_gpus_and_recreate(manifest, rule_context):
    assert_rule_holds(B.GPU_WORKLOADS.rule, manifest, rule_context)

"""GPU workloads request nvidia.com/gpu and use Recreate where only one GPU slot exists."""

import pytest

from serving_conformance.checks.static import assert_rule_holds
from serving_conformance.rules.rules import GPU_WORKLOADS


@pytest.mark.static
@pytest.mark.rule(GPU_WORKLOADS)
def test_gpu_workloads_request_gpus_and_recreate(manifest, rule_context):
    assert_rule_holds(GPU_WORKLOADS, manifest, rule_context)

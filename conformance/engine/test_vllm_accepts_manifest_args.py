"""vLLM's own argument parser accepts every vLLM container's args, so a typo fails here, not in a crash loop.

Option names are compared exactly: argparse would accept `--served-model-nam` as an abbreviation.
"""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.manifests.design import DESIGN_VLLM


@pytest.mark.behaviour(B.VLLM_ARGS_PARSE)
@pytest.mark.workloads(DESIGN_VLLM)
def test_vllm_parser_accepts_the_container_args(workload, vllm_arg_check):
    for container in workload.vllm_containers:
        result = vllm_arg_check[tuple(container.vllm_tokens)]
        assert result.ok, (
            f"{workload.label} container {container.name!r}: vLLM rejects its args {list(result.args)}: "
            f"{result.error}. The pod would crash-loop at start."
        )

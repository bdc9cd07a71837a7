"""What conformance tests use to check: status conditions and waits' conditions, the OpenAI-API
checks, the static rule assertion and the canary judge. Tests import from here, not internals."""

from serving_conformance.checks.canary import Revision, judge_split, samples_needed
from serving_conformance.checks.static import assert_rule_holds
from serving_conformance.cluster.conditions import (
    condition,
    deployment_available,
    describe_conditions,
    generation,
    has_route_parents,
    is_true,
    rolled_out_after,
)
from serving_conformance.cluster.kube import Ref, WaitTimeout
from serving_conformance.openai_api import (
    CheckFailed,
    Endpoint,
    assert_api_key_enforced,
    assert_engine_version,
    assert_serves_model,
    assert_unknown_model_is_404,
    chat,
    count_fingerprints,
    list_models,
    parse_fingerprint,
    stream_fingerprints,
)

__all__ = [
    "CheckFailed", "Endpoint", "Ref", "Revision", "WaitTimeout", "assert_api_key_enforced", "assert_engine_version",
    "assert_rule_holds", "assert_serves_model", "assert_unknown_model_is_404", "chat", "condition", "count_fingerprints",
    "deployment_available", "describe_conditions", "generation", "has_route_parents", "is_true", "judge_split",
    "list_models", "parse_fingerprint", "rolled_out_after", "samples_needed", "stream_fingerprints",
]

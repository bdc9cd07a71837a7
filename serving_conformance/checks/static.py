"""How a static conformance test judges one resource against one rule."""

from __future__ import annotations

import pytest

from serving_conformance.manifests.model import Resource
from serving_conformance.rules.findings import CannotCheck, Rule, RuleContext


def assert_rule_holds(rule: Rule, resource: Resource, context: RuleContext) -> None:
    try:
        findings = rule.check(resource, context)
    except CannotCheck as exc:
        pytest.skip(f"{rule.id} not judged for {resource.ident}: {exc}")
    if findings:
        pytest.fail(rule.failure_message(resource, findings), pytrace=False)

"""The context every rule judges in, built one way for the plugin and for in-process judges."""

from __future__ import annotations

from serving_conformance.base.settings import Expectations
from serving_conformance.manifests.model import ManifestSet
from serving_conformance.manifests.platform_config import find_config
from serving_conformance.rules.findings import RuleContext
from serving_conformance.rules.schema import classify_nameless


def rule_context(manifests: ManifestSet, expect: Expectations) -> RuleContext:
    """The manifests, what is expected, KServe's configuration; documents without a name sorted
    into problems (a kind the API server serves) and what is not followed (a tool's documents)."""
    context = RuleContext(manifests, expect, find_config(manifests))
    classify_nameless(context)
    return context

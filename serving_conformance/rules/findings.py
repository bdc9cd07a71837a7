"""Rules and their findings: what was found, what KServe or vLLM will do with it, the fix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from serving_conformance.base.limits import MAX_FINDINGS_SHOWN
from serving_conformance.base.settings import Expectations
from serving_conformance.base.text import clip
from serving_conformance.manifests.model import ManifestSet, Resource

if TYPE_CHECKING:
    from serving_conformance.manifests.platform_config import KServeConfig


@dataclass(frozen=True)
class Finding:
    """Each field is cut to MAX_FINDING_CHARS: `found` often quotes the object itself."""

    found: str
    effect: str
    fix: str

    def __post_init__(self) -> None:
        for name in ("found", "effect", "fix"):
            object.__setattr__(self, name, clip(str(getattr(self, name))))

    def render(self) -> str:
        return f"  found:  {self.found}\n  effect: {self.effect}\n  fix:    {self.fix}"


@dataclass
class RuleContext:
    manifests: ManifestSet
    expect: Expectations
    kserve_config: KServeConfig | None


@dataclass(frozen=True)
class Rule:
    id: str
    # The behaviour in the design's words; the report shows it.
    title: str
    applies: Callable[[Resource], bool]
    check: Callable[[Resource, RuleContext], list[Finding]]
    # Said when nothing under the manifests directory is something this rule applies to.
    nothing_to_check: str
    # Whether a resource the rule applies to matters here, given all the manifests (e.g. only
    # the design's paths, not other models' workloads).
    in_context: Callable[[Resource, RuleContext], bool] = lambda resource, context: True

    def select(self, context: RuleContext) -> list[Resource]:
        return [r for r in context.manifests.resources if self.applies(r) and self.in_context(r, context)]

    def failure_message(self, resource: Resource, findings: list[Finding]) -> str:
        lines = [f"{self.id}: {resource.ident} ({resource.where}) breaks '{self.title}'"]
        lines.extend(f.render() for f in findings[:MAX_FINDINGS_SHOWN])
        if len(findings) > MAX_FINDINGS_SHOWN:
            lines.append(f"  ... and {len(findings) - MAX_FINDINGS_SHOWN} more findings")
        return "\n".join(lines)


class CannotCheck(Exception):
    """Raised by a check that cannot judge a resource here (e.g. its schema is unobtainable).

    The test is then skipped with this reason and the report marks the result partial.
    """

"""How a static conformance test judges one resource against one rule, and how a run on seeded
faulty manifests is judged against what the fault declares (the negative controls)."""

from __future__ import annotations

import traceback
from dataclasses import dataclass

import pytest

from serving_conformance.manifests.faults import Fault
from serving_conformance.manifests.model import Resource
from serving_conformance.rules.findings import CannotCheck, Rule, RuleContext

CRASHED = "rule crashed:"


def _crash_message(rule: Rule, resource: Resource, exc: BaseException) -> str:
    """The exception and where it was raised (file, line, function; no source text, so that the
    message never quotes a rule's own words as if they were a finding)."""
    frames = traceback.extract_tb(exc.__traceback__)[-4:]
    where = "\n".join(f"  at {f.filename}:{f.lineno} in {f.name}" for f in frames)
    return (f"{CRASHED} {rule.id} raised {type(exc).__name__}: {exc} judging {resource.ident} ({resource.where}); "
            f"nothing was judged, this is a bug of the rule\n{where}")


def assert_rule_holds(rule: Rule, resource: Resource, context: RuleContext) -> None:
    """Pass when the rule finds nothing; fail with its findings; skip when it cannot judge here.

    A rule that raises anything else has judged nothing: that is a failure of its own kind, whose
    message starts with "rule crashed:", never taken for the rule's finding."""
    try:
        findings = rule.check(resource, context)
        message = rule.failure_message(resource, findings) if findings else None
    except CannotCheck as exc:
        pytest.skip(f"{rule.id} not judged for {resource.ident}: {exc}")
    except Exception as exc:  # any other exception is the rule's bug, reported as such
        pytest.fail(_crash_message(rule, resource, exc), pytrace=False)
    if message is not None:
        pytest.fail(message, pytrace=False)


# --- negative controls --------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """One failed static test: its behaviour, its object (a resource ident, or a file) and message."""

    behaviour: str
    ident: str
    message: str


def control_problems(fault: Fault, failures: list[Failure], only: set[str] | None = None) -> list[str]:
    """What is wrong with a static run on the faulted manifests, judged as `fault` declares it:
    exactly its behaviours fail (none for `breaks: none`); its own rule fails on the objects it
    names (`fails_on`, else its target), on each of them, or on one object where it names none; no rule crashes;
    and every failure of its rule says each `expect` word. Empty when the control holds. With
    `only`, `failures` are those of these behaviours' tests, and only they are judged."""
    problems = []
    failed = {f.behaviour for f in failures}
    expected = fault.broken if only is None else fault.broken & only
    if failed != expected:
        problems.append(f"failed behaviours {sorted(failed)}, expected {sorted(expected)}")
    problems += [f"{f.behaviour} on {f.ident}: {f.message.splitlines()[0]}" for f in failures
                 if f.message.startswith(CRASHED)]
    own = [f for f in failures if f.behaviour == fault.breaks]
    if fault.failing_idents:
        problems += [f"{fault.breaks} fails on {f.ident}, not on {list(fault.failing_idents)}" for f in own
                     if not fault.is_target(f.ident)]
        problems += [f"{fault.breaks} does not fail on {ident}" for ident in fault.failing_idents
                     if own and not any(Fault.same_object(ident, f.ident) for f in own)]
    elif len(own) > 1:
        problems.append(f"{fault.breaks} fails on {len(own)} objects ({[f.ident for f in own]}), expected one")
    for failure in own:
        missing = [word for word in fault.expect if word not in failure.message]
        if missing:
            problems.append(f"{fault.breaks} on {failure.ident} does not say {missing}: {failure.message}")
    return problems

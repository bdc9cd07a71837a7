"""The verdict contract: what one word of the report may say, computed in one place.

Modelled on Gateway API's ConformanceReport. A test's outcome is `pass`, `fail`, `skip` (its place
lacks what it needs, or there is nothing to judge), `circular` (its checks passed, but the place
made the expected side itself: an engine built from --engine-version reporting that version) or
`not-run` (collected, then deselected by -k, --deselect or -m, or never reached because the run
stopped). A behaviour's result is its worst test outcome (fail, then not-run, skip, circular, pass).

A profile is `success` only when every behaviour of it ran every case it collected and each
passed; `failure` when any failed; `not-run` when none of its cases was selected; `partial`
otherwise. An interrupted run has no `success` anywhere. The overall result is `error` (a usage
error: the run never started), `interrupted`, `failure` (a failure, a run stopped early, or a
required profile unmet), `partial`, `success`, or `not-run` (nothing selected).

A required profile (--require-profile P) is met only by `success`; `P:ran` is met by a profile
that ran every case it collected with no failure (skips, circular results and stand-ins allowed,
each listed): what a place can prove where it stands in for part of the platform.
"""

from __future__ import annotations

from collections.abc import Iterable

from serving_conformance.base.settings import RAN, SUCCESS, Requirement

PASS, FAIL, SKIP, CIRCULAR, NOT_RUN = "pass", "fail", "skip", "circular", "not-run"
# Worst first: a behaviour's result is the worst of its tests'.
SEVERITY = (FAIL, NOT_RUN, SKIP, CIRCULAR, PASS)
PARTIAL, FAILURE, INTERRUPTED, ERROR = "partial", "failure", "interrupted", "error"
__all__ = ["RAN", "SUCCESS", "Requirement"]


def behaviour_result(outcomes: Iterable[str]) -> str:
    outcomes = set(outcomes)
    return next((o for o in SEVERITY if o in outcomes), NOT_RUN)


def profile_result(outcomes: Iterable[str], interrupted: bool = False) -> str:
    outcomes = list(outcomes)
    if not outcomes or all(o == NOT_RUN for o in outcomes):
        return NOT_RUN
    if FAIL in outcomes:
        return FAILURE
    if interrupted or any(o != PASS for o in outcomes):
        return PARTIAL
    return SUCCESS


def met(requirement: Requirement, result: str, outcomes: Iterable[str]) -> bool:
    if requirement.level == SUCCESS:
        return result == SUCCESS
    outcomes = list(outcomes)
    return result in (SUCCESS, PARTIAL) and FAIL not in outcomes and NOT_RUN not in outcomes


def overall(profiles: Iterable[str], *, stopped: bool, interrupted: bool, unmet: bool) -> str:
    ran = [p for p in profiles if p != NOT_RUN]
    if interrupted:
        return INTERRUPTED
    if stopped or unmet or FAILURE in ran:
        return FAILURE
    if not ran:
        return NOT_RUN
    return SUCCESS if all(p == SUCCESS for p in ran) else PARTIAL


def passes_gate(result: str) -> bool:
    """Whether a run with this overall result exits 0 (partial does: a gate reads the report)."""
    return result in (SUCCESS, PARTIAL, NOT_RUN)

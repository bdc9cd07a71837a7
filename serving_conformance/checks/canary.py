"""Judging a canary split from counted answers, with a known power.

Each revision's share of N answers is tested against its declared weight with an exact two-sided
binomial test at level ALPHA (two revisions: one share decides the other) or ALPHA / k for k > 2. N is sized so that a share DEVIATION away
from the declared one (5 points: 80/20 served as 75/25 or 85/15) fails with probability at least
POWER, while a split served as declared fails with probability at most ALPHA. With the defaults
an 80/20 split needs about 2,500 answers.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ALPHA = 1e-4
POWER = 0.99
DEVIATION = 0.05


@dataclass(frozen=True)
class Revision:
    label: str
    fingerprint: str
    weight: int


def _log_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == n else -math.inf
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p)


def _pmfs(n: int, p: float) -> list[float]:
    return [math.exp(_log_pmf(k, n, p)) for k in range(n + 1)]


@functools.lru_cache(maxsize=256)
def acceptance(n: int, p: float, alpha: float) -> tuple[int, int]:
    """The counts [lo, hi] an exact two-sided test at level `alpha` accepts for a share `p` of n
    (each tail outside holds at most alpha/2 of the probability)."""
    pmf = _pmfs(n, p)
    lo, tail = 0, 0.0
    while lo <= n and tail + pmf[lo] <= alpha / 2:
        tail += pmf[lo]
        lo += 1
    hi, tail = n, 0.0
    while hi >= 0 and tail + pmf[hi] <= alpha / 2:
        tail += pmf[hi]
        hi -= 1
    return lo, hi


def power_at(n: int, p0: float, p1: float, alpha: float) -> float:
    """Probability that the test of share p0 fails when the true share is p1."""
    lo, hi = acceptance(n, p0, alpha)
    pmf = _pmfs(n, p1)
    return sum(pmf[:lo]) + sum(pmf[hi + 1:])


def test_level(revisions: int, alpha: float = ALPHA) -> float:
    """Each share's level: with two revisions one share decides the other, beyond that Bonferroni."""
    return alpha if revisions <= 2 else alpha / revisions


def samples_needed(
    shares: Sequence[float], deviation: float = DEVIATION, alpha: float = ALPHA, power: float = POWER
) -> int:
    """The fewest answers for which every share's test detects a deviation of `deviation` either
    way with at least `power` (searched exactly, from the normal estimate)."""
    level = test_level(len(shares), alpha)
    z_a = _z(1 - level / 2)
    z_b = _z(power)
    needed = 1
    for p0 in shares:
        if p0 <= 0 or p0 >= 1:
            continue
        candidates = [p for p in (p0 - deviation, p0 + deviation) if 0 < p < 1]
        worst = max(
            ((z_a * math.sqrt(p0 * (1 - p0)) + z_b * math.sqrt(p1 * (1 - p1))) / deviation) ** 2 for p1 in candidates
        )
        n = max(10, int(worst * 0.9))
        while not all(power_at(n, p0, p1, level) >= power for p1 in candidates):
            n += max(1, n // 100)
        needed = max(needed, n)
    return needed


def _z(q: float) -> float:
    """The standard normal quantile, by bisection on the CDF (only a starting point for the exact search)."""
    lo, hi = -10.0, 10.0
    for _ in range(200):  # bisection on the CDF: exact enough, and simple
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def judge_split(revisions: Sequence[Revision], counts: Mapping[str, int], diagnosis: str = "") -> None:
    """Fail (AssertionError) unless every revision got its declared share of the answers counted
    by fingerprint; the message names the counts and the diagnosis."""
    labels = {r.fingerprint: r.label for r in revisions}
    if len(labels) < len(revisions):
        raise AssertionError(
            f"the revisions answer with the same fingerprint {list(revisions)}: they cannot be told apart, so the "
            "split cannot be measured (make the revisions differ in configuration)"
        )
    total_answers = sum(counts.values())
    table = ", ".join(f"{labels.get(fp, 'unknown ' + fp)}: {n}" for fp, n in sorted(counts.items(), key=lambda i: -i[1]))
    unknown = sum(n for fp, n in counts.items() if fp not in labels)
    if unknown:
        raise AssertionError(f"{unknown} of {total_answers} answers came from no declared revision ({table})")
    starved = [r.label for r in revisions if r.weight <= 0]
    if starved:
        raise AssertionError(
            f"the split declares no traffic for {', '.join(starved)} ({table}): a revision with weight 0 is not a "
            "canary, it never sees a request"
        )
    weight_sum = sum(r.weight for r in revisions)
    declared = ", ".join(f"{r.label} {r.weight}/{weight_sum}" for r in revisions)
    answered = [r for r in revisions if counts.get(r.fingerprint, 0) > 0]
    if len(answered) == 1:
        raise AssertionError(
            f"only {answered[0].label} answered all {total_answers} requests, though the split declares {declared}. "
            f"{diagnosis}".strip()
        )
    level = test_level(len(revisions))
    for revision in revisions:
        share = revision.weight / weight_sum
        lo, hi = acceptance(total_answers, share, level)
        got = counts.get(revision.fingerprint, 0)
        if not lo <= got <= hi:
            raise AssertionError(
                f"{revision.label} received {got} of {total_answers} requests ({got / total_answers:.1%}), declared "
                f"{share:.1%}: outside {lo}..{hi}, which a split served as declared leaves with probability below "
                f"{level:g}; counts: {table}. {diagnosis}".strip()
            )

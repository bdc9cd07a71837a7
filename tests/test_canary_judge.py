"""The canary judge on synthetic counts: a split served as declared passes, one 5 points or more off
fails, with the power and false-failure rate the module promises (checked by exact computation and
by simulation)."""

import random

import pytest

from serving_conformance.checks.canary import ALPHA, POWER, Revision, acceptance, judge_split, power_at, samples_needed

STABLE, CANARY = Revision("stable", "vllm-0.23.0-aaaaaaaa", 80), Revision("canary", "vllm-0.23.0-bbbbbbbb", 20)
N = samples_needed([0.8, 0.2])


def counts(stable: int, canary: int) -> dict[str, int]:
    return {STABLE.fingerprint: stable, CANARY.fingerprint: canary}


def test_the_sample_size_detects_five_points_with_the_promised_power():
    level = ALPHA  # two revisions: one share decides the other
    assert power_at(N, 0.2, 0.25, level) >= POWER and power_at(N, 0.2, 0.15, level) >= POWER
    lo, hi = acceptance(N, 0.2, level)
    assert lo < 0.2 * N < hi
    assert 2000 < N < 3500  # about 2,700 answers for 80/20


def test_a_split_served_as_declared_passes():
    judge_split([STABLE, CANARY], counts(round(0.8 * N), N - round(0.8 * N)))


@pytest.mark.parametrize("stable_share", [0.5, 0.7, 0.9])
def test_a_split_served_otherwise_fails_naming_the_counts(stable_share):
    stable = round(stable_share * N)
    with pytest.raises(AssertionError, match=r"received \d+ of \d+ requests .* declared"):
        judge_split([STABLE, CANARY], counts(stable, N - stable))


def test_all_traffic_to_one_revision_is_diagnosed_as_such():
    with pytest.raises(AssertionError, match="only stable answered all"):
        judge_split([STABLE, CANARY], counts(N, 0), "the diagnosis")


def test_a_weight_of_zero_and_indistinguishable_revisions_are_refused():
    with pytest.raises(AssertionError, match="weight 0"):
        judge_split([STABLE, Revision("canary", CANARY.fingerprint, 0)], counts(N, 0))
    with pytest.raises(AssertionError, match="cannot be told apart"):
        judge_split([STABLE, Revision("canary", STABLE.fingerprint, 20)], counts(N, 0))
    with pytest.raises(AssertionError, match="from no declared revision"):
        judge_split([STABLE, CANARY], {**counts(N - 5, 0), "vllm-0.23.0-cccccccc": 5})


def test_simulated_splits_fail_and_pass_as_often_as_computed():
    rng = random.Random(20261202)
    trials = 300

    def failures(share: float) -> int:
        failed = 0
        for _ in range(trials):
            canary = sum(rng.random() < share for _ in range(N))
            try:
                judge_split([STABLE, CANARY], counts(N - canary, canary))
            except AssertionError:
                failed += 1
        return failed

    assert failures(0.25) >= trials * 0.97  # power 0.99 computed; a margin for 300 trials
    assert failures(0.15) >= trials * 0.97
    assert failures(0.20) <= 1  # false-failure rate 1e-4 computed

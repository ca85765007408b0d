"""Paired statistics and verdicts: known answers (scipy's own t test), coverage on simulated data,
TOST at both ends, and the seeds a precision or a decision needs."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ttest_rel

from backend.stats import (
    decide, equivalent, paired, paired_frame, paired_table, seed_differences, seeds_for_half_width, seeds_to_decide,
    t_half_width,
)


def test_paired_t_interval_is_scipys_ttest_rel_interval():
    a = np.array([71.2, 69.8, 73.4, 70.1, 72.6, 68.9])
    b = np.array([70.0, 69.9, 71.1, 69.0, 71.8, 68.2])
    summary = paired(a - b)
    ci = ttest_rel(a, b).confidence_interval(0.95)
    assert summary.low == pytest.approx(ci.low, abs=1e-12) and summary.high == pytest.approx(ci.high, abs=1e-12)
    assert summary.mean == pytest.approx((a - b).mean()) and summary.seeds == 6
    assert summary.improvement == pytest.approx(5 / 6)  # one seed has a < b
    assert summary.boot_low is not None and summary.boot_low < summary.mean < summary.boot_high


def test_paired_frame_matches_seeds_and_drops_the_unmatched():
    a = pd.Series({0: 1.0, 1: 2.0, 2: 4.0})
    b = pd.Series({1: 1.0, 2: 1.0, 3: 9.0})
    assert paired_frame(a, b).to_dict() == {1: 1.0, 2: 3.0}


def test_one_seed_has_no_interval_and_no_bootstrap_below_five():
    assert "no interval" in paired([1.5]).text()
    assert paired([1.0, 2.0, 3.0, 2.5]).boot_low is None


@pytest.mark.parametrize("n", [5, 10])
@pytest.mark.parametrize("kind", ["t", "bootstrap"])
def test_coverage_of_95_percent_intervals_on_simulated_normal_differences(n, kind):
    rng = np.random.default_rng(1234 + n)
    true_mean, covered = 1.7, 0
    for _ in range(400):
        s = paired(rng.normal(true_mean, 2.0, n), resamples=1999, seed=int(rng.integers(1 << 30)))
        low, high = (s.low, s.high) if kind == "t" else (s.boot_low, s.boot_high)
        covered += low <= true_mean <= high
    assert covered / 400 >= 0.93


def test_tost_marks_zero_equivalent_and_three_margins_not():
    rng = np.random.default_rng(7)
    margin = 1.0
    assert equivalent(rng.normal(0.0, 1.0, 20), margin)
    assert not equivalent(rng.normal(3 * margin, 1.0, 20), margin)


def test_verdicts_for_a_claimed_effect():
    assert decide(paired([2.0, 2.5, 1.8, 2.2, 2.1]), 0.5, "greater").verdict == "agrees"
    assert decide(paired([-2.0, -2.5, -1.8, -2.2, -2.1]), 0.5, "greater").verdict == "disagrees"
    flat = decide(paired([0.01, -0.02, 0.015, 0.0, -0.01]), 0.5, "greater")
    assert flat.verdict == "disagrees" and "TOST" in flat.reason
    open_ = decide(paired([1.0, -0.5, 2.0]), 0.5, "greater")
    assert open_.verdict == "undecided" and open_.seeds_needed is not None and open_.seeds_needed > 3
    assert decide(paired([2.0, 2.5, 1.8, 2.2, 2.1]), 0.5, "less").verdict == "disagrees"


def test_verdicts_for_a_claim_of_no_difference():
    assert decide(paired([0.1, -0.1, 0.05, 0.0, -0.05]), 1.0, "equivalent").verdict == "agrees"
    assert decide(paired([3.0, 3.2, 2.9, 3.1]), 1.0, "equivalent").verdict == "disagrees"
    assert decide(paired([0.5, -1.5, 2.0]), 1.0, "equivalent").verdict == "undecided"


def test_the_seeds_needed_would_decide_an_interval_of_the_same_mean_and_spread():
    mean, std = 0.8, 1.5
    n = seeds_to_decide(mean, std, margin=0.2, sign=1)
    assert t_half_width(std, n) < mean <= t_half_width(std, n - 1)
    assert seeds_to_decide(0.0, 1.0, margin=1e-9, sign=1) is None  # a null effect inside no margin: never


def test_seeds_for_a_half_width_is_the_fewest_that_reach_it():
    n = seeds_for_half_width(2.0, 1.0)
    assert t_half_width(2.0, n) <= 1.0 < t_half_width(2.0, n - 1)
    assert seeds_for_half_width(2.0, 1e-6) is None


def test_paired_table_per_two_keys_is_scipys_ttest_rel_per_group():
    """Fixed per-seed scores of two treatments at two depths: a grouped by (treatment, n) summary
    whose intervals are scipy's, one group per pair of keys, each seed counted once."""
    a = {("AnB", 1): [71.2, 69.8, 73.4, 70.1, 72.6, 68.9], ("AnB", 2): [65.0, 66.5, 64.2],
         ("AnB+", 1): [74.0, 75.5, 73.1, 76.2, 74.8]}
    b = {("AnB", 1): [70.0, 69.9, 71.1, 69.0, 71.8, 68.2], ("AnB", 2): [66.0, 66.0, 65.9],
         ("AnB+", 1): [72.0, 74.1, 73.5, 74.0, 73.3]}
    rows = [{"treatment": t, "n": n, "seed": s, "kind": kind, "value": v, "job": 100 * s + n}
            for kind, scores in (("a", a), ("b", b)) for (t, n), values in scores.items()
            for s, v in enumerate(values)]
    frame = pd.DataFrame(rows)
    differences = seed_differences(frame, ["treatment", "n"], "kind", "a", "b", jobs="job")
    table = paired_table(pd.concat([differences, differences.iloc[:1]]),  # a seed twice: counted once
                         ["treatment", "n"], jobs="jobs").set_index(["treatment", "n"])
    assert list(table.index) == list(a)
    for key in a:
        ci = ttest_rel(a[key], b[key]).confidence_interval(0.95)
        row = table.loc[key]
        assert row.low == pytest.approx(ci.low, abs=1e-12) and row.high == pytest.approx(ci.high, abs=1e-12)
        assert row["mean"] == pytest.approx(np.mean(np.subtract(a[key], b[key]))) and row.seeds == len(a[key])
        assert row.improvement == pytest.approx(np.mean(np.greater(a[key], b[key])))
    assert table.loc[("AnB", 1), "boot_low"] < table.loc[("AnB", 1), "mean"] < table.loc[("AnB", 1), "boot_high"]
    assert np.isnan(table.loc[("AnB", 2), "boot_low"])  # three seeds: no bootstrap
    assert table.loc[("AnB", 2), "jobs"] == "2,102,202"
    assert paired_table(differences.iloc[:0], ["treatment", "n"]).empty

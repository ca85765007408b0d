"""Effective data transferred: known power laws in, known amounts out; refusals say why."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as t_dist

from backend.effective_data import (
    FLAT, FLOOR, NO_SIZE, TOO_FEW, PowerLawFit, effective_amount, effective_data_finding_table, fit_scratch_error,
    fit_summary, scratch_fits, transferred_data,
)

AMOUNTS = [2, 4, 8, 16, 32, 64, 128]
TRUE = PowerLawFit(a=0.05, b=0.8, c=0.5, converged=True, amounts=(2.0, 128.0))


def study(seeds=(0, 1, 2), noise=0.002, worth=(10, 40)) -> pd.DataFrame:
    """A cross-data-set study's scores: baseB on the true curve (plus noise), its largest amount
    labelled "all" (128 images per class of 5 classes); AnB+ at 10 images per class as good as scratch
    on 40, and AnB at 10 as good as scratch on 10 (nothing transferred)."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in seeds:
        for amount in AMOUNTS:
            label = "all" if amount == 128 else amount
            error = TRUE.error(amount) + rng.normal(0, noise)
            rows.append({"seed": seed, "depth": 3, "target": "digits 5-9", "class_fraction": 1.0, "amount": label,
                         "treatment": "baseB", "n": 0, "final_accuracy": 1 - error,
                         "train_images": 5 * amount, "classes": 5})
        at, like = worth
        rows += [{"seed": seed, "depth": 3, "target": "digits 5-9", "class_fraction": 1.0, "amount": at,
                  "treatment": treatment, "n": 2, "final_accuracy": 1 - TRUE.error(equal),
                  "train_images": 5 * at, "classes": 5} for treatment, equal in (("AnB+", like), ("AnB", at))]
    return pd.DataFrame(rows)


def test_the_fit_recovers_a_known_amount_transferred_within_five_percent():
    table = transferred_data(study())
    pt = table[table.treatment == "AnB+"]
    assert len(pt) == 3 and (pt.reason == "").all() and (pt.amount == 10).all()
    assert pt.D_T.to_numpy() == pytest.approx(30.0, rel=0.05)  # worth 40 images per class, trained on 10
    assert pt.ratio.to_numpy() == pytest.approx(4.0, rel=0.05)
    assert table[table.treatment == "AnB"].D_T.abs().max() < 0.05 * 10  # as good as scratch: nothing transferred


def test_amount_all_is_the_networks_images_per_class_and_unknown_sizes_are_refused():
    fits = scratch_fits(study(seeds=(0,)))
    assert fits[(0, 3, "digits 5-9", 1.0)].amounts == (2.0, 128.0)  # "all" = 640 images / 5 classes
    scores = study(seeds=(0,))
    scores.loc[scores.amount == "all", ["train_images", "classes"]] = np.nan
    scores.loc[len(scores)] = {**scores.iloc[-1].to_dict(), "amount": "all", "train_images": np.nan}  # size unknown
    table = transferred_data(scores)
    assert (table.reason == NO_SIZE).sum() == 1
    assert scratch_fits(scores)[(0, 3, "digits 5-9", 1.0)].amounts == (2.0, 64.0)  # the curve without it


def test_the_inverse_refuses_to_extrapolate_past_the_limit_and_says_so():
    assert effective_amount(TRUE, TRUE.error(2.9 * 128))[0] == pytest.approx(2.9 * 128)
    d_eff, reason = effective_amount(TRUE, TRUE.error(3.1 * 128))
    assert d_eff is None and reason == "beyond 3x the largest amount measured (128)"
    d_eff, reason = effective_amount(TRUE, TRUE.error(1000), limit=10)
    assert d_eff == pytest.approx(1000)  # the limit is the caller's
    d_eff, reason = effective_amount(TRUE, TRUE.error(0.5))  # far worse than scratch on the fewest images
    assert d_eff is None and reason == "below 1/3 of the smallest amount measured (2)"
    assert effective_amount(TRUE, 0.05) == (None, FLOOR)  # the asymptote: no finite amount reaches it
    assert effective_amount(TRUE, 0.01) == (None, FLOOR)


def test_a_round_trip_through_the_curve_returns_the_error():
    for error in np.linspace(TRUE.error(3 * 128), TRUE.error(0.7), 25):
        d_eff, reason = effective_amount(TRUE, error)
        assert reason == "" and TRUE.error(d_eff) == pytest.approx(error, rel=1e-12)


def test_a_flat_or_short_curve_gives_a_reason_not_a_number():
    flat = fit_scratch_error(AMOUNTS, 0.3 + np.random.default_rng(1).normal(0, 0.001, len(AMOUNTS)))
    assert not flat.converged and flat.reason == FLAT
    assert effective_amount(flat, 0.25) == (None, FLAT)
    rising = fit_scratch_error(AMOUNTS, np.linspace(0.2, 0.4, len(AMOUNTS)))  # more data, worse: no power law
    assert not rising.converged and rising.reason == FLAT
    short = fit_scratch_error([10, 30], [0.3, 0.2])
    assert not short.converged and short.reason == TOO_FEW
    scores = study(seeds=(0,))
    scores.loc[scores.treatment == "baseB", "final_accuracy"] = 0.7
    table = transferred_data(scores)
    assert table.D_T.isna().all() and (table.reason == FLAT).all()


def test_the_summary_gives_a_mean_and_interval_over_seeds_and_counts_refusals():
    scores = study()
    scores.loc[(scores.seed == 2) & (scores.treatment == "AnB+"), "final_accuracy"] = 1 - TRUE.error(1000)
    summary = effective_data_finding_table(scores)
    pt = summary[summary.treatment == "AnB+"].iloc[0]
    assert pt.seeds == 2 and pt.refused == 1 and pt.reasons == "beyond 3x the largest amount measured (128)"
    # The seed refused is the one whose pretraining is worth the most: the other two's mean would be biased.
    assert np.isnan([pt.D_T, pt.D_T_ci95, pt.ratio, pt.ratio_ci95]).all()
    scores = study()
    summary = effective_data_finding_table(scores)
    pt = summary[summary.treatment == "AnB+"].iloc[0]
    assert pt.seeds == 3 and pt.refused == 0 and pt.reasons == ""
    numbers = transferred_data(scores).query("treatment == 'AnB+'").D_T
    assert pt.D_T == pytest.approx(numbers.mean()) == pytest.approx(30, rel=0.05)
    assert pt.D_T_ci95 == pytest.approx(t_dist.ppf(0.975, 2) * numbers.std() / np.sqrt(3))  # Student t, 3 seeds
    assert {"target", "treatment", "n", "amount", "D_T", "D_T_ci95", "ratio", "ratio_ci95"} <= set(summary)
    assert "seed" not in summary
    fits = fit_summary(scratch_fits(scores), ["seed", "depth", "target", "class_fraction"])
    row = fits.iloc[0]
    assert row.fitted == 3 and row.not_fitted == 0
    assert row.c == pytest.approx(0.5, abs=0.1) and row.a == pytest.approx(0.05, abs=0.02) and row.c_ci95 > 0

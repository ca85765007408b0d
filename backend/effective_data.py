"""Effective data transferred (Hernandez, Kaplan, Henighan, McCandlish 2021, "Scaling laws for transfer"):
how many target images per class the pretraining is worth.

Per seed and setting (depth, target, class share), the from-scratch network's (baseB, RI-T) test error
is fitted against training images per class N with a saturating power law

    err(N) = a + b * N^(-c),   a >= 0, b > 0, c > 0.

A pretrained network (AnB+ = P-T, AnB) trained on N images per class with test error e is worth
D_eff images per class of training from scratch, where err(D_eff) = e, i.e.
D_eff = (b / (e - a))^(1/c); the data the pretraining transferred is D_T = D_eff - N, and D_eff / N
says by what factor it multiplies the target data. A number is only given where the curve was fitted
and D_eff lies near the amounts measured (a power law says little far outside them); elsewhere the
row carries the reason instead.

A data amount of "all" is a real point on the curve: the network's training images divided by its
classes (both stored with every network's results). Rows without those scalars are left out, with
a reason. Pure functions of pandas and NumPy (torch-free: the dashboard imports this).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from backend.stats import ci95

# How far past the amounts measured D_eff may go, as a factor: at most LIMIT x the largest amount,
# at least the smallest / LIMIT. PAPERS.md: "never extrapolated far past the amounts measured".
EXTRAPOLATION_LIMIT = 3.0
# A fitted drop in error over the measured amounts smaller than this (half a point of accuracy) is a
# flat curve: every error in that band maps to any amount, so the inverse would only amplify noise.
MIN_DROP = 0.005
MAX_EXPONENT = 4.0  # c beyond this is a step, not a power law; the bound keeps the optimiser finite
# The labels of one from-scratch curve (amount varies along it) and of one pretrained network.
CURVE = ("seed", "depth", "target", "class_fraction")
NETWORK = (*CURVE, "source_epoch", "treatment", "n", "amount")
REFERENCE = ("baseA", "baseB")  # the source network and the scratch curve itself: nothing transferred

FLAT = "the from-scratch error does not fall with data over the amounts measured"
TOO_FEW = "fewer than 3 data amounts with a from-scratch network: no curve to fit"
NO_CURVE = "no from-scratch (baseB) curve for this seed and setting"
FLOOR = "error at or below the fitted floor a of the from-scratch error: no amount reaches it"
NO_SIZE = "amount 'all' without a stored training-set size (train_images, classes)"
NO_SCORE = "no test score"
NOT_CONVERGED = "the power-law fit did not converge"


@dataclass(frozen=True)
class PowerLawFit:
    """err(N) = a + b N^-c fitted to the from-scratch test error over images per class in `amounts`."""

    a: float  # the error no amount of target data removes
    b: float
    c: float  # how fast more data helps
    converged: bool
    amounts: tuple[float, float]  # smallest and largest images per class fitted
    reason: str = ""  # why not converged

    def error(self, n: float | np.ndarray) -> float | np.ndarray:
        return self.a + self.b * np.power(n, -self.c)


def fit_scratch_error(amounts, errors) -> PowerLawFit:
    """Least squares fit of err(N) = a + b N^-c with a >= 0, b > 0, 0 < c <= MAX_EXPONENT, from a few
    starting exponents (the best fit kept). Not converged, with a reason, when fewer than 3 distinct
    amounts, when the optimiser fails, or when the fitted curve is flat over the amounts measured."""
    n = np.asarray(amounts, dtype=float)
    err = np.asarray(errors, dtype=float)
    keep = np.isfinite(n) & np.isfinite(err) & (n > 0)
    n, err = n[keep], err[keep]
    span = (float(n.min()), float(n.max())) if n.size else (np.nan, np.nan)
    if np.unique(n).size < 3:  # three parameters: fewer amounts leave the curve undetermined
        return PowerLawFit(np.nan, np.nan, np.nan, False, span, TOO_FEW)
    best = None
    for c0 in (0.25, 0.5, 1.0, 2.0):
        a0 = 0.5 * err.min()
        b0 = max(err.max() - a0, 1e-3) * n.min() ** c0
        try:
            result = least_squares(lambda p: p[0] + p[1] * n ** -p[2] - err, x0=[a0, b0, c0],
                                   bounds=([0.0, 1e-12, 1e-6], [1.0, np.inf, MAX_EXPONENT]), method="trf")
        except (ValueError, FloatingPointError):
            continue
        if result.success and np.all(np.isfinite(result.x)) and (best is None or result.cost < best.cost):
            best = result
    if best is None:
        return PowerLawFit(np.nan, np.nan, np.nan, False, span, NOT_CONVERGED)
    a, b, c = (float(v) for v in best.x)
    drop = b * (span[0] ** -c - span[1] ** -c)
    if drop < MIN_DROP:
        return PowerLawFit(a, b, c, False, span, FLAT)
    return PowerLawFit(a, b, c, True, span)


def beyond(limit: float, largest: float) -> str:
    return f"beyond {limit:g}x the largest amount measured ({largest:g})"


def below(limit: float, smallest: float) -> str:
    return f"below 1/{limit:g} of the smallest amount measured ({smallest:g})"


def effective_amount(fit: PowerLawFit, error: float,
                     limit: float = EXTRAPOLATION_LIMIT) -> tuple[float | None, str]:
    """(D_eff, "") where err(D_eff) = error within [smallest / limit, limit x largest amount fitted];
    (None, why) otherwise."""
    if not fit.converged:
        return None, fit.reason
    if not np.isfinite(error):
        return None, NO_SCORE
    if error <= fit.a:
        return None, FLOOR
    d_eff = (fit.b / (error - fit.a)) ** (1.0 / fit.c)
    smallest, largest = fit.amounts
    if d_eff > limit * largest:
        return None, beyond(limit, largest)
    if d_eff < smallest / limit:  # worse than scratch on less data than ever measured: as unknown
        return None, below(limit, smallest)
    return float(d_eff), ""


def images_per_class(scores: pd.DataFrame) -> pd.Series:
    """Each network's training images per class: its amount label, or for "all" (or a missing label)
    its stored training images over its classes; NaN where neither is known."""
    labelled = pd.to_numeric(scores["amount"], errors="coerce") if "amount" in scores \
        else pd.Series(np.nan, index=scores.index)
    if {"train_images", "classes"} <= set(scores):
        labelled = labelled.fillna(scores["train_images"] / scores["classes"])
    return labelled.astype(float)


def _keys(scores: pd.DataFrame, names: tuple[str, ...]) -> list[str]:
    return [k for k in names if k in scores]


def _key(record: dict, keys: list[str]) -> tuple:
    """A curve's labels as a dict key; a missing label (NaN) is None, so it matches itself."""
    return tuple(None if pd.isna(record[k]) else record[k] for k in keys)


def scratch_fits(scores: pd.DataFrame, score: str = "final_accuracy") -> dict[tuple, PowerLawFit]:
    """One fit per seed and setting (the labels of CURVE the scores have) over its baseB networks,
    keyed by those labels' values in CURVE order (None for a missing one)."""
    keys = _keys(scores, CURVE)
    base = scores[scores.treatment == "baseB"].assign(images=images_per_class(scores), error=1 - scores[score])
    curves: dict[tuple, list[tuple[float, float]]] = {}
    for record in base.to_dict("records"):
        curves.setdefault(_key(record, keys), []).append((record["images"], record["error"]))
    return {key: fit_scratch_error(*zip(*points)) for key, points in curves.items()}


def transferred_data(scores: pd.DataFrame, score: str = "final_accuracy",
                     limit: float = EXTRAPOLATION_LIMIT) -> pd.DataFrame:
    """One row per pretrained network (every treatment but baseA and baseB) with its labels (those of
    NETWORK present), images per class (`amount`, "all" resolved), test `error`, D_eff, D_T, ratio
    (D_eff / amount) and `reason` ("" where the numbers are given, else why they are missing), indexed
    as in `scores`. `scores` holds one study's networks: its baseB ones give the curves."""
    keys = _keys(scores, NETWORK)
    columns = keys + ["error", "D_eff", "D_T", "ratio", "reason"]
    if scores.empty or score not in scores or "treatment" not in scores:
        return pd.DataFrame(columns=columns)
    fits = scratch_fits(scores, score)
    curve = _keys(scores, CURVE)
    networks = scores[~scores.treatment.isin(REFERENCE)].assign(images=images_per_class(scores))
    rows = []
    for record in networks.to_dict("records"):
        error = 1.0 - record[score]
        fit = fits.get(_key(record, curve))
        if np.isnan(record["images"]):
            d_eff, reason = None, NO_SIZE
        elif fit is None:
            d_eff, reason = None, NO_CURVE
        else:
            d_eff, reason = effective_amount(fit, error, limit)
        rows.append({**{k: record[k] for k in keys}, "amount": record["images"], "error": error,
                     "D_eff": d_eff, "D_T": None if d_eff is None else d_eff - record["images"],
                     "ratio": None if d_eff is None else d_eff / record["images"], "reason": reason})
    # The networks' own index, so a caller can put the numbers beside its rows.
    table = pd.DataFrame(rows, columns=columns, index=networks.index)
    return table.astype({c: float for c in ("D_eff", "D_T", "ratio")})


def summarise_transfer(table: pd.DataFrame) -> pd.DataFrame:
    """Per setting, treatment, n and amount (over seeds): mean D_T and ratio with their 95% Student t
    half-widths (D_T_ci95, ratio_ci95), the seeds that gave a number, those refused and their
    reasons (distinct, "; "-joined). Where any seed was refused there is no mean: the seeds refused
    are those whose D_eff lies out of reach, so a mean of the others would be biased towards the reachable."""
    keys = [k for k in NETWORK if k in table and k != "seed" and table[k].notna().any()]
    out = ["D_T", "D_T_ci95", "ratio", "ratio_ci95", "seeds", "refused", "reasons"]
    if table.empty:
        return pd.DataFrame(columns=keys + out)
    grouped = table.groupby(keys, dropna=False, sort=True)
    summary = grouped.agg(D_T=("D_T", "mean"), D_T_std=("D_T", "std"), ratio=("ratio", "mean"),
                          ratio_std=("ratio", "std"), seeds=("D_T", "count"),
                          refused=("reason", lambda r: int((r != "").sum())),
                          reasons=("reason", lambda r: "; ".join(sorted(set(r) - {""})))).reset_index()
    summary["D_T_ci95"] = ci95(summary.pop("D_T_std"), summary["seeds"])
    summary["ratio_ci95"] = ci95(summary.pop("ratio_std"), summary["seeds"])
    summary.loc[summary.refused > 0, ["D_T", "D_T_ci95", "ratio", "ratio_ci95"]] = np.nan
    return summary[keys + out]


def fit_summary(fits: dict[tuple, PowerLawFit], keys: list[str]) -> pd.DataFrame:
    """Per setting (`keys`: the labels of CURVE the fits are keyed by, seed among them): a, b and c of
    the converged fits, mean over seeds with 95% Student t half-widths, and the seeds fitted or not."""
    setting = [k for k in keys if k != "seed"]
    frame = pd.DataFrame([{**dict(zip(keys, key)), "a": f.a, "b": f.b, "c": f.c, "fitted": f.converged}
                          for key, f in fits.items()], columns=[*keys, "a", "b", "c", "fitted"])
    frame["setting"] = frame[setting].astype(str).agg(" ".join, axis=1) if setting else ""
    good = frame[frame.fitted]
    stats = good.groupby("setting")[["a", "b", "c"]].agg(["mean", "std", "count"])
    out = frame.groupby("setting").agg(**{k: (k, "first") for k in setting}, fitted=("fitted", "sum"),
                                       seeds=("fitted", "size"))
    for p in ("a", "b", "c"):
        out[p] = stats[(p, "mean")]
        out[f"{p}_ci95"] = ci95(stats[(p, "std")], stats[(p, "count")]).reindex(out.index)
    out["not_fitted"] = out.pop("seeds") - out["fitted"]
    return out.reset_index(drop=True)[[*setting, "a", "a_ci95", "b", "b_ci95", "c", "c_ci95", "fitted", "not_fitted"]]


def effective_data_finding_table(scores: pd.DataFrame, score: str = "final_accuracy",
                                 limit: float = EXTRAPOLATION_LIMIT) -> pd.DataFrame:
    """What a findings report quotes: per setting, treatment, n and amount, the images per class the
    pretraining is worth (D_T) and D_eff / N, mean and 95% interval over seeds, with the refusals.
    `scores`: Results.study_scores of a cross-data-set study's networks (kinds train and transfer)."""
    return summarise_transfer(transferred_data(scores, score, limit))

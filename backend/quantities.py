"""The key per-seed quantities of each study kind, read from a study's scores (db.results'
`study_scores`): the paired differences its findings judge and its sequential seeds stop on.

Torch-free, on pandas. Each quantity is a function (scores, study spec) -> a Series indexed by seed;
a seed that has not measured it yet is absent. backend.specs.seeds names them for validation.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from backend.specs.seeds import SEED_QUANTITIES
from backend.stats import Paired, paired
from backend.studies.cross import SETTING

NONE = pd.Series(dtype=float)  # no seed measured it


def probe_rows(scores: pd.DataFrame, *probes: str | None) -> pd.DataFrame:
    """The rows of the given probes; None: the networks themselves (no probe label)."""
    if "probe" not in scores:
        return scores if None in probes else scores.iloc[:0]
    mask = scores["probe"].isin([p for p in probes if p is not None])
    return scores[mask | scores["probe"].isna()] if None in probes else scores[mask]


def deepest(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows at the deepest n (every layer transferred), from the last source epoch where there are several."""
    rows = rows[rows.n == rows.n.max()]
    return rows[rows.source_epoch == rows.source_epoch.max()] if rows.get("source_epoch", NONE).notna().any() else rows


def pt_rit(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per seed and target: `column` of P-T (AnB+ at the deepest n, from the last source epoch) and of
    RI-T (baseB) in the same setting, averaged over the other setting labels (amount, depth, share)."""
    if column not in rows or "target" not in rows:  # not measured, or no target network finished yet
        return pd.DataFrame(columns=["P-T", "RI-T"])
    pt, rit = deepest(rows[rows.treatment == "AnB+"]), rows[rows.treatment == "baseB"]
    both = pt.merge(rit, on=[k for k in SETTING if k in rows], suffixes=("", "_rit"))
    return both.groupby(["seed", "target"])[[column, f"{column}_rit"]].mean().set_axis(["P-T", "RI-T"], axis=1)


def yosinski_score(spec: dict) -> tuple[str, str]:
    """The score column and its description. The paper's, the mean of the 10 best evaluations, where a
    network is evaluated at least 20 times (once an epoch); over fewer it would average the climb to
    the plateau, a speed measure, so there the final accuracy (the cosine schedule ends at lr 0)."""
    epochs = spec.get("train", {}).get("epochs", 10)
    if epochs >= 20:
        return "best10_accuracy", "Mean of the 10 best test evaluations (%)"
    return "final_accuracy", (f"Final test accuracy (%): with {epochs} evaluations (one an epoch) the paper's mean of "
                              "the 10 best would average the climb to the plateau")


def anb_drop_at(scores: pd.DataFrame, spec: dict) -> tuple[pd.Series, int, int]:
    """Per seed: AnB's score (%) at the smallest n minus at the deepest n; and those n."""
    anb = probe_rows(scores, None)
    anb = anb[anb.treatment == "AnB"] if "treatment" in anb else anb.iloc[:0]
    if anb.empty or anb.n.nunique() < 2:
        return NONE, 0, 0
    lo, hi = int(anb.n.min()), int(anb.n.max())
    at = anb.groupby(["n", "seed"])[yosinski_score(spec)[0]].mean().mul(100)
    return (at.loc[lo] - at.loc[hi]).dropna(), lo, hi


def anb_plus_gain_by_n(scores: pd.DataFrame, spec: dict) -> pd.Series:
    """(seed, n) -> AnB+ minus baseB of the same seed, in points."""
    nets = probe_rows(scores, None)
    if "treatment" not in nets:
        return NONE
    column = yosinski_score(spec)[0]
    base = nets[nets.treatment == "baseB"].groupby("seed")[column].mean()
    plus = nets[nets.treatment == "AnB+"].groupby(["seed", "n"])[column].mean()
    return plus.sub(base, level="seed").mul(100).dropna()


def _anb_plus_gain(scores: pd.DataFrame, spec: dict) -> pd.Series:
    return anb_plus_gain_by_n(scores, spec).groupby(level="seed").mean()


def _anb_drop(scores: pd.DataFrame, spec: dict) -> pd.Series:
    return anb_drop_at(scores, spec)[0]


def _pt_gain(scores: pd.DataFrame, spec: dict) -> pd.Series:
    pairs = pt_rit(probe_rows(scores, None), "final_accuracy")
    return (100 * (pairs["P-T"] - pairs["RI-T"])).groupby(level="seed").mean() if not pairs.empty else NONE


def pair_gap(column: str, higher: str) -> Callable[[pd.DataFrame, dict], pd.Series]:
    """A basins study's per-seed gap in a pair probe's `column` (mean over pairs and targets): `higher`
    pairs' minus the other kind's, so that the paper's side is positive."""
    lower = "RI-T" if higher == "P-T" else "P-T"

    def gap(scores: pd.DataFrame, spec: dict) -> pd.Series:
        pairs = probe_rows(scores, "interpolation", "similarity")
        if column not in pairs or "pair" not in pairs:
            return NONE
        per = pairs.groupby(["pair", "seed"])[column].mean()
        if not {"P-T", "RI-T"} <= set(per.index.get_level_values("pair")):
            return NONE
        return (per.loc[higher] - per.loc[lower]).dropna()

    return gap


QUANTITIES: dict[str, Callable[[pd.DataFrame, dict], pd.Series]] = {
    "anb_plus_gain": _anb_plus_gain, "anb_drop": _anb_drop, "pt_gain": _pt_gain,
    "barrier_gap": pair_gap("barrier", "RI-T"), "cka_gap": pair_gap("cka_diagonal_mean", "P-T"),
    "l2_gap": pair_gap("l2_distance", "RI-T"), "mistakes_gap": pair_gap("mistakes.mistake_jaccard", "P-T"),
}
assert set(QUANTITIES) == {q for names in SEED_QUANTITIES.values() for q in names}


def per_seed(name: str, scores: pd.DataFrame, spec: dict) -> pd.Series:
    """The quantity `name` per seed (the seeds that measured it)."""
    if scores.empty or "seed" not in scores:
        return NONE
    return QUANTITIES[name](scores, spec).astype(float)


def label(name: str) -> str:
    return next(names[name] for names in SEED_QUANTITIES.values() if name in names)


# ---------------------------------------------------------------- sequential seeds

OPEN, REACHED, BUDGET, STALLED = "running", "reached", "budget", "stalled"


def precision_state(values: pd.Series, seeds_queued: int, asked: float, max_seeds: int) -> tuple[str, Paired]:
    """Where a sequential-seeds rule stands after its seeds so far: REACHED when the 95% interval of
    the per-seed `values` is at most +/- asked, BUDGET when max_seeds are queued, STALLED when a seed
    that has finished measured nothing (its jobs failed or were cancelled: more seeds would end the same
    way), else OPEN (add the next seed). The width decides, never the interval's position: that would
    stop on significance."""
    summary = paired(values)
    if summary.seeds < seeds_queued:
        return STALLED, summary
    if summary.seeds > 1 and summary.half_width <= asked:
        return REACHED, summary
    return (BUDGET if seeds_queued >= max_seeds else OPEN), summary

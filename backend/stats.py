"""Statistics every reader of results shares (the dashboard's bands, the findings report, adaptive
seeds): torch-free, on pandas, NumPy and SciPy.

Treatments of one seed share its class split, initialisation and batch order, so a difference
(AnB+ - baseB, P-T - RI-T) is taken per seed first and then summarised: the mean of the per-seed
differences with a 95% Student t interval, a bootstrap interval beside it from 5 seeds on, and the
probability of improvement. A verdict reads that interval against a stated margin (PAPERS.md,
"Deciding a finding"): agrees, disagrees (the other side, or equivalent to no effect by TOST), or
undecided with the seeds that would likely decide it. Rankings too: how well a score orders targets
or candidate sources by what fine-tuning measured (rank correlation, weighted Kendall's tau, top-1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.stats import t as t_dist

LEVEL = 0.95  # every interval the app shows
BOOTSTRAP_FROM = 5  # seeds; below this a bootstrap of the mean is too coarse to report
MAX_SEEDS = 1000  # "seeds needed" beyond this is reported as out of reach


def ci95(std: pd.Series, k: pd.Series) -> pd.Series:
    """Half-width of the two-sided 95% Student t interval of a mean of k values (0 where k = 1: no band)."""
    half = t_dist.ppf(0.975, (k - 1).clip(lower=1)) * std / k.pow(0.5)
    return half.where(k > 1, 0.0).fillna(0.0)


def t_half_width(std: float, n: int, level: float = LEVEL) -> float:
    """Half-width of the two-sided Student t interval of a mean of n values with this spread."""
    return float(t_dist.ppf(0.5 + level / 2, n - 1) * std / np.sqrt(n)) if n > 1 else float("inf")


@dataclass(frozen=True)
class Paired:
    """The summary of per-seed differences a - b."""

    mean: float
    low: float  # 95% Student t interval
    high: float
    seeds: int
    std: float  # seed-to-seed standard deviation of the difference
    improvement: float  # probability of improvement: share of seeds with a > b (ties count half)
    boot_low: float | None = None  # 95% bootstrap-t interval, from 5 seeds on
    boot_high: float | None = None

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def text(self, digits: int = 2) -> str:
        """'1.23 [0.45, 2.01] (95% t, 5 seeds; bootstrap [..]; P(improvement) 0.80)'."""
        if self.seeds == 0:
            return "n/a (no seed measured both)"
        f = f"{{:.{digits}f}}".format
        if self.seeds == 1:
            return f"{f(self.mean)} (one seed, no interval)"
        boot = f"; bootstrap [{f(self.boot_low)}, {f(self.boot_high)}]" if self.boot_low is not None else ""
        return (f"{f(self.mean)} [{f(self.low)}, {f(self.high)}] (95% t, {self.seeds} seeds{boot}; "
                f"P(improvement) {self.improvement:.2f})")


def paired(differences: pd.Series | np.ndarray | list, level: float = LEVEL, resamples: int = 4999,
           seed: int = 0) -> Paired:
    """Summarise per-seed differences (NaN dropped): mean, Student t interval, and from 5 seeds on a
    bootstrap interval, which does not assume the differences are normal."""
    d = np.asarray(pd.Series(differences, dtype=float).dropna(), dtype=float)
    n = len(d)
    if n == 0:
        nan = float("nan")
        return Paired(nan, nan, nan, 0, nan, nan)
    mean = float(d.mean())
    std = float(d.std(ddof=1)) if n > 1 else float("nan")
    half = t_half_width(std, n, level) if n > 1 else float("nan")
    improvement = float(np.mean((d > 0) + 0.5 * (d == 0)))
    boot = _bootstrap_t(d, level, resamples, seed) if n >= BOOTSTRAP_FROM and std > 0 else (None, None)
    return Paired(mean, mean - half, mean + half, n, std, improvement, *boot)


def _bootstrap_t(d: np.ndarray, level: float, resamples: int, seed: int) -> tuple[float, float]:
    """The studentized (bootstrap-t) interval of the mean (Efron and Tibshirani 1993, ch. 12): the
    quantiles of (mean* - mean) / se* over resamples, applied to the sample's own se. Measured on 1,000
    normal samples it covers 94% at 5 seeds and 95% at 10, where scipy's percentile and BCa intervals
    cover 85-90% at 5 (too narrow: they ignore that se itself is estimated)."""
    n = len(d)
    mean, se = d.mean(), d.std(ddof=1) / np.sqrt(n)
    draws = d[np.random.default_rng(seed).integers(0, n, (resamples, n))]  # (resamples, n)
    se_star = draws.std(axis=1, ddof=1) / np.sqrt(n)
    keep = se_star > 0  # a resample of one repeated value has no spread: no t
    t_star = (draws.mean(axis=1)[keep] - mean) / se_star[keep]
    lo, hi = np.quantile(t_star, [(1 - level) / 2, (1 + level) / 2])
    return float(mean - hi * se), float(mean - lo * se)


def paired_frame(a: pd.Series, b: pd.Series) -> pd.Series:
    """Per-seed a - b over the seeds that measured both (both indexed by seed)."""
    both = pd.concat({"a": a, "b": b}, axis=1).dropna()
    return both.a - both.b


def equivalent(differences: pd.Series | np.ndarray, margin: float, alpha: float = 0.05) -> bool:
    """Two one-sided tests (TOST) at level alpha: the 1 - 2 alpha t interval lies inside (-margin, +margin)."""
    p = paired(differences, level=1 - 2 * alpha)
    return p.seeds > 1 and -margin < p.low and p.high < margin


def seeds_for_half_width(std: float, half_width: float, level: float = LEVEL, start: int = 2) -> int | None:
    """The fewest seeds (>= start) whose t interval, at this seed-to-seed spread, is no wider than
    +/- half_width: n with t_{n-1} std / sqrt(n) <= half_width. None beyond MAX_SEEDS."""
    if not np.isfinite(std):
        return None
    if std == 0:
        return max(start, 2)
    for n in range(max(start, 2), MAX_SEEDS + 1):
        if t_half_width(std, n, level) <= half_width:
            return n
    return None


# ---------------------------------------------------------------- verdicts

Verdict = Literal["agrees", "disagrees", "undecided"]


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str  # one sentence: which interval lies where
    seeds_needed: int | None = None  # undecided only: the seeds that would likely decide it


def decide(summary: Paired, margin: float, claim: Literal["greater", "less", "equivalent"],
           differences: pd.Series | np.ndarray | None = None, unit: str = "") -> Decision:
    """The verdict on per-seed differences a - b against the paper's claim with a stated practical
    margin (in the difference's units):

    - claim 'greater' (the paper says a > b) or 'less': agrees when the 95% interval lies wholly on
      the paper's side of 0; disagrees when it lies wholly on the other side, or when the 90% interval
      lies inside +/- margin (TOST: the effect is practically absent); undecided otherwise.
    - claim 'equivalent' (the paper says a and b do about as well): agrees by TOST; disagrees when the
      95% interval lies wholly beyond the margin; undecided otherwise.

    An undecided verdict carries the seeds that would likely decide it, from the observed mean and
    spread (the fewest n at which the same mean and spread would reach either decision)."""
    u = f" {unit}" if unit else ""
    if summary.seeds < 2 or not np.isfinite(summary.std):
        return Decision("undecided", f"{summary.seeds} seed(s): no interval yet", None)
    tost = paired(differences, level=0.90) if differences is not None else _at_level(summary, 0.90)
    inside = -margin < tost.low and tost.high < margin
    sign = {"greater": 1, "less": -1, "equivalent": 0}[claim]
    lo, hi = summary.low, summary.high
    span = f"the 95% interval [{lo:.3g}, {hi:.3g}]{u}"
    if sign:
        if (lo > 0 if sign > 0 else hi < 0):
            return Decision("agrees", f"{span} lies wholly on the paper's side of 0")
        if (hi < 0 if sign > 0 else lo > 0):
            return Decision("disagrees", f"{span} lies wholly on the other side of 0")
        if inside:
            return Decision("disagrees", f"the 90% interval [{tost.low:.3g}, {tost.high:.3g}]{u} lies inside "
                                         f"+/-{margin:g}{u}: equivalent to no effect (TOST)")
    else:
        if inside:
            return Decision("agrees", f"the 90% interval [{tost.low:.3g}, {tost.high:.3g}]{u} lies inside "
                                      f"+/-{margin:g}{u} (TOST)")
        if lo > margin or hi < -margin:
            return Decision("disagrees", f"{span} lies wholly beyond +/-{margin:g}{u}")
    return Decision("undecided", f"{span} reaches both sides of what would decide it (margin +/-{margin:g}{u})",
                    seeds_to_decide(summary.mean, summary.std, margin, sign, summary.seeds))


def seeds_to_decide(mean: float, std: float, margin: float, sign: int, start: int = 2) -> int | None:
    """The fewest seeds at which an interval with this mean and spread would decide the claim (sign:
    +1 'greater', -1 'less', 0 'equivalent'); None when no number up to MAX_SEEDS would."""
    if std == 0:
        return start
    for n in range(max(start, 2), MAX_SEEDS + 1):
        h95, h90 = t_half_width(std, n), t_half_width(std, n, 0.90)
        if abs(mean) > h95 and sign != 0:  # the interval leaves 0 (either side decides)
            return n
        if abs(mean) + h90 < margin:  # equivalent
            return n
        if sign == 0 and abs(mean) - h95 > margin:
            return n
    return None


def _at_level(summary: Paired, level: float) -> Paired:
    half = t_half_width(summary.std, summary.seeds, level)
    return Paired(summary.mean, summary.mean - half, summary.mean + half, summary.seeds, summary.std,
                  summary.improvement)


def fit_line(points: pd.DataFrame, x: str, y: str, log_x: bool = False, log_y: bool = False) -> dict:
    """Least-squares line y = a + b x (on logs where asked, as Chen et al. fit log T against log N):
    slope, intercept, R^2 and the number of points; None values when fewer than 3 usable points."""
    data = points[[x, y]].dropna()
    if log_x:
        data = data[data[x] > 0]
    if log_y:
        data = data[data[y] > 0]
    xs = np.log(data[x].to_numpy(float)) if log_x else data[x].to_numpy(float)
    ys = np.log(data[y].to_numpy(float)) if log_y else data[y].to_numpy(float)
    if len(xs) < 3 or np.ptp(xs) == 0:
        return {"slope": None, "intercept": None, "r2": None, "points": len(xs)}
    slope, intercept = np.polyfit(xs, ys, 1)
    residual = ys - (intercept + slope * xs)
    total = ((ys - ys.mean()) ** 2).sum()
    r2 = 1 - (residual ** 2).sum() / total if total > 0 else 1.0
    return {"slope": float(slope), "intercept": float(intercept), "r2": float(r2), "points": len(xs)}


# ---------------------------------------------------------------- tables of paired differences

PAIRED_COLUMNS = ("mean", "low", "high", "boot_low", "boot_high", "seeds", "improvement")


def paired_table(differences: pd.DataFrame, keys: list[str], value: str = "difference", seed: str = "seed",
                 jobs: str | None = None) -> pd.DataFrame:
    """Per group of `keys` (in order of first appearance), `paired` over the group's per-seed
    differences in column `value`: mean, low and high (95% Student t), boot_low and boot_high (bootstrap-t,
    from 5 seeds; else NaN), seeds, improvement (the share of seeds whose difference is > 0). Rows of one
    seed within a group are averaged first, so each seed counts once. With `jobs`, a column of the group's
    job ids (each cell one id or a comma-separated list) joined as one sorted list, for a table row to open."""
    columns = [*keys, *PAIRED_COLUMNS, *(["jobs"] if jobs else [])]
    rows = differences.dropna(subset=[value])
    if rows.empty:
        return pd.DataFrame(columns=columns)
    out = []
    for group, part in rows.groupby(keys, sort=False):
        per_seed = part.groupby(seed)[value].mean()
        p = paired(per_seed)
        nan = float("nan")
        out.append({**dict(zip(keys, group if isinstance(group, tuple) else (group,))), "mean": p.mean,
                    "low": p.low, "high": p.high, "boot_low": nan if p.boot_low is None else p.boot_low,
                    "boot_high": nan if p.boot_high is None else p.boot_high, "seeds": p.seeds,
                    "improvement": p.improvement, **({"jobs": _job_ids(part[jobs])} if jobs else {})})
    return pd.DataFrame(out, columns=columns)


def _job_ids(cells: pd.Series) -> str:
    ids = {int(float(v)) for cell in cells.dropna() for v in str(cell).split(",") if v.strip()}
    return ",".join(map(str, sorted(ids)))


def seed_differences(frame: pd.DataFrame, keys: list[str], by: str, a, b, value: str = "value",
                     seed: str = "seed", jobs: str | None = None) -> pd.DataFrame:
    """The per-seed differences `paired_table` summarises: per group of `keys` and seed, the mean
    `value` of the rows whose `by` is `a` minus that of the rows whose `by` is `b` (P-T minus RI-T, one
    study minus another), over the groups and seeds both measured; with `jobs`, both sides' job ids."""
    columns = [*keys, seed, "difference", *(["jobs"] if jobs else [])]
    rows = frame.dropna(subset=[value])
    sides = [rows[rows[by] == side].groupby([*keys, seed]).agg(
        value=(value, "mean"), **({"jobs": (jobs, _job_ids)} if jobs else {})) for side in (a, b)]
    both = sides[0].merge(sides[1], left_index=True, right_index=True, suffixes=("_a", "_b"))
    if both.empty:
        return pd.DataFrame(columns=columns)
    both["difference"] = both.value_a - both.value_b
    if jobs:
        both["jobs"] = both.jobs_a + "," + both.jobs_b
    return both.reset_index()[columns]


# ---------------------------------------------------------------- rankings

def rank_correlation(scores: Sequence[float], gains: Sequence[float]) -> dict:
    """How well a transferability score ranks target tasks (or source models) by their measured
    transfer gain: Spearman's rho and Kendall's tau (tau-b, ties allowed) with their two-sided
    p-values, scores and gains one per target. Returns {"spearman", "spearman_p", "kendall",
    "kendall_p", "targets"}."""
    a = np.asarray(scores, dtype=np.float64).ravel()
    b = np.asarray(gains, dtype=np.float64).ravel()
    if len(a) != len(b):
        raise ValueError(f"{len(a)} scores but {len(b)} gains: one of each per target")
    if len(a) < 2:
        raise ValueError(f"a rank correlation needs at least 2 targets, got {len(a)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("scores and gains must be finite numbers")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        raise ValueError("the scores or the gains are all equal: their ranking carries no order to correlate")
    rho = stats.spearmanr(a, b)
    tau = stats.kendalltau(a, b)
    return {"spearman": float(rho.statistic), "spearman_p": float(rho.pvalue),
            "kendall": float(tau.statistic), "kendall_p": float(tau.pvalue), "targets": len(a)}


def rank_agreement(scores: Sequence[float], accuracies: Sequence[float]) -> dict[str, float]:
    """How well a score ranks candidate sources by their fine-tuned accuracy, as You et al. 2021 report
    it: weighted Kendall's tau (scipy's hyperbolic weights, so swaps among the best candidates cost most),
    Spearman's rho, and the top-1 hit (1.0 when the best-scored candidate is a best fine-tuned one).
    All three are NaN for a constant score: it orders nothing, and picks nothing."""
    # Scores equal to 6 significant digits are ties: a degenerate score (H-score at its ceiling C - 1 when the
    # features outnumber the images) differs only by rounding between candidates, which orders nothing.
    a = np.asarray([float(f"{v:.6g}") for v in np.asarray(scores, dtype=np.float64).ravel()])
    b = np.asarray(accuracies, dtype=np.float64).ravel()
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"one score and one accuracy per candidate, at least 2: got {len(a)} and {len(b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("scores and accuracies must be finite numbers")
    ordered = np.ptp(a) > 0 and np.ptp(b) > 0
    return {"weighted_tau": float(stats.weightedtau(a, b).statistic) if ordered else float("nan"),
            "spearman": float(stats.spearmanr(a, b).statistic) if ordered else float("nan"),
            "top1": float(b[np.argmax(a)] == b.max()) if np.ptp(a) > 0 else float("nan")}

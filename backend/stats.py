"""Small statistics every reader of results shares (the dashboard's bands, the findings report):
torch-free, on pandas and NumPy."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import t as t_dist


def ci95(std: pd.Series, k: pd.Series) -> pd.Series:
    """Half-width of the two-sided 95% Student t interval of a mean of k values (0 where k = 1: no band)."""
    half = t_dist.ppf(0.975, (k - 1).clip(lower=1)) * std / k.pow(0.5)
    return half.where(k > 1, 0.0).fillna(0.0)


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

"""Verdicts in Markdown: a finding (measured, paper, claim with its margin, verdict) and the tables it
is written with. Knows nothing of the papers or the store: backend.findings does.

Every verdict reads one paired interval: the per-seed differences a - b (treatments of one seed share
its split, initialisation and batch order), summarised by backend.stats, against a practical margin
stated in the difference's own units. Agrees, disagrees, or undecided with the seeds that would likely
decide it; never "true in every seed", which a null effect passes one time in four with two seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from backend.stats import Paired, decide, paired, paired_frame, t_half_width

Claim = Literal["greater", "less", "equivalent"]
SIGN = {"greater": ">", "less": "<", "equivalent": "≈"}


@dataclass(frozen=True)
class Finding:
    title: str
    measured: str  # Markdown: numbers with their seeds and 95% intervals
    paper: str
    rule: str  # the claim tested and its margin; "" for a table without a verdict
    verdict: str | None  # agrees | disagrees | undecided; None: a table without a verdict
    sentence: str
    difference: Paired | None = None  # the paired difference the verdict reads
    margin: float | None = None  # in the difference's units
    unit: str = ""
    seeds_needed: int | None = None  # undecided: the seeds that would likely decide it
    quantity: str | None = None  # the sequential-seeds quantity that adds seeds to this finding
    page: str | None = None  # the dashboard page that draws it
    moot: str = ""  # why the data cannot test the claim (then undecided, and more seeds would not change that)


def table(title: str, measured: str, paper: str, page: str | None = None) -> Finding:
    """A finding without a verdict: a table set beside the paper's numbers."""
    return Finding(title, measured, paper, "", None, "", page=page)


def judge(title: str, measured: str, paper: str, what: str, differences: pd.Series, claim: Claim, margin: float,
          unit: str = "", digits: int = 2, quantity: str | None = None, page: str | None = None,
          moot: str = "") -> Finding:
    """The verdict on per-seed `differences` (what = 'a - b', in `unit`) against the paper's `claim`
    with a practical `margin`; `moot` says why the data cannot test the claim (undecided, whatever the
    interval: the paper's premise does not hold here)."""
    d = pd.Series(differences, dtype=float).dropna()
    summary = paired(d)
    u = f" {unit}" if unit else ""
    rule = (f"{what} {SIGN[claim]} 0, margin ±{margin:g}{u}" if claim != "equivalent"
            else f"{what} within ±{margin:g}{u}")
    measured = f"{measured}\n\nPaired difference {what}: {summary.text(digits)}{_per_seed(d, digits)}."
    if moot:
        return Finding(title, measured, paper, rule, "undecided", f"Undecided: {moot}.", summary, margin, unit,
                       None, quantity, page, moot)
    if summary.seeds < 2:
        sentence = (f"Undecided: {summary.seeds} seed(s) measured {what}; an interval needs two or more." if
                    summary.seeds else "Undecided: the store lacks what the claim needs.")
        return Finding(title, measured, paper, rule, "undecided", sentence, summary, margin, unit, None, quantity,
                       page)
    decision = decide(summary, margin, claim, d, unit)
    sentence = f"{decision.verdict.capitalize()}: {decision.reason}"
    if decision.verdict == "undecided":
        sentence += (f"; about {decision.seeds_needed} seeds would likely decide it (from the observed spread)"
                     if decision.seeds_needed else "; no number of seeds up to 1,000 would, at this spread")
    return Finding(title, measured, paper, rule, decision.verdict, sentence + ".", summary, margin, unit,
                   decision.seeds_needed, quantity, page)


def versus(title: str, paper: str, what: str, a: tuple[str, pd.Series], b: tuple[str, pd.Series], claim: Claim,
           margin: float, unit: str = "", digits: int = 3, extra: str = "", **kw) -> Finding:
    """a's `what` against b's, paired by seed; a and b are (name, per-seed Series)."""
    both = pd.concat({"a": a[1], "b": b[1]}, axis=1).dropna()
    measured = (f"{a[0]}: {stat(both.a, digits)}; {b[0]}: {stat(both.b, digits)}"
                + (f"\n\n{extra}" if extra else ""))
    return judge(title, measured, paper, f"{a[0]} - {b[0]} {what}", paired_frame(a[1], b[1]), claim, margin, unit,
                 digits, **kw)


def log_ratio(a: pd.Series, b: pd.Series) -> pd.Series:
    """Per-seed log(a / b): a scale-free difference for positive measures (curvature, T); NaN elsewhere."""
    both = pd.concat({"a": a, "b": b}, axis=1).dropna()
    ok = (both.a > 0) & (both.b > 0)
    return np.log(both.a[ok] / both.b[ok])


def _per_seed(d: pd.Series, digits: int) -> str:
    if d.empty or len(d) > 12:
        return ""
    return "; per seed " + ", ".join(f"{int(s)}: {x:.{digits}f}" for s, x in d.items())


def ci_half_width(values: pd.Series) -> float:
    return t_half_width(float(values.std()), len(values))


def stat(values: pd.Series, digits: int = 2) -> str:
    """'mean ± half-width (95% t, n seeds)' of per-seed values; no interval for one seed."""
    v = values.dropna()
    if v.empty:
        return "n/a"
    if len(v) == 1:
        return f"{v.mean():.{digits}f} (one seed, no interval)"
    return f"{v.mean():.{digits}f} ± {ci_half_width(v):.{digits}f} (95% t, {len(v)} seeds)"


def markdown_table(frame: pd.DataFrame, digits: int = 2) -> str:
    """A Markdown table of `frame` (index included); a cell holding per-seed values shows mean ± CI."""
    def cell(value) -> str:
        if isinstance(value, list):
            s = pd.Series(value, dtype=float).dropna()
            if s.empty:
                return ""
            return f"{s.mean():.{digits}f}" + (f" ± {ci_half_width(s):.{digits}f}" if len(s) > 1 else "")
        return "" if pd.isna(value) else f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    frame = frame.reset_index()
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(map(cell, row)) + " |" for row in frame.itertuples(index=False)])


def seed_cells(frame: pd.DataFrame, index: list[str], columns: str, value: str) -> pd.DataFrame:
    """index x columns; each cell the list of per-seed means of `value` (a _table cell)."""
    per_seed = frame.groupby(list(dict.fromkeys([*index, columns, "seed"])), dropna=False)[value].mean()
    return per_seed.reset_index().groupby([*index, columns], dropna=False)[value].agg(list).unstack(columns)


def markdown_section(f: Finding) -> list[str]:
    lines = [f"### {f.title}", "", f"**Measured.** {f.measured}", "", f"**Paper.** {f.paper}", ""]
    if not f.rule:
        return lines
    return lines + [f"**Claim tested.** {f.rule}.", "", f"**Verdict: {f.verdict}.** {f.sentence}", ""]

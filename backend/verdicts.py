"""Verdicts in Markdown: a finding (measured, paper, rule, verdict) and the tables and per-seed
statistics it is written with. Knows nothing of the papers or the store: backend.findings does."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from backend.stats import ci95  # the formula of the dashboard's bands


@dataclass(frozen=True)
class Finding:
    title: str
    measured: str  # Markdown: numbers with their seeds and 95% CIs
    paper: str
    rule: str  # when the verdict is "agrees"; "" for a table without a verdict
    agrees: bool | None  # None: the store lacks what the rule needs
    sentence: str


def finding(title: str, measured: str, paper: str, rule: str, holds: pd.Series | bool | None,
            evidence: str = "", moot: str = "") -> Finding:
    """The verdict of `rule`: `holds` per seed (agrees when true in every seed), one bool, or None;
    `moot` says why the data cannot test the rule (the paper's premise does not hold here)."""
    if moot:
        return Finding(title, measured, paper, rule, None, f"Undecided: {moot}.")
    if holds is None or (isinstance(holds, pd.Series) and holds.empty):
        return Finding(title, measured, paper, rule, None, f"Undecided: the store lacks what the rule needs ({rule}).")
    where, stated = "", rule
    if isinstance(holds, pd.Series):
        seeds, failing = (", ".join(str(int(s)) for s in i) for i in (holds.index, holds.index[~holds.to_numpy(bool)]))
        where = f" in every seed ({seeds})" if holds.all() else f" in seed {failing} (of {seeds})"
        holds, stated = bool(holds.all()), rule + ", in every seed"
    sentence = (f"{'Agrees' if holds else 'Disagrees'} with the paper: {rule} "
                f"{'holds' if holds else 'does not hold'}{where}{evidence}.")
    return Finding(title, measured, paper, stated, bool(holds), sentence)


def ci_half_width(values: pd.Series) -> float:
    return float(ci95(pd.Series([values.std()]), pd.Series([len(values)])).iloc[0])


def stat(values: pd.Series, digits: int = 2) -> str:
    """'mean ± half-width (95% CI, seed 0: a, 1: b)' of per-seed values; no CI for one seed."""
    v = values.dropna()
    if v.empty:
        return "n/a"
    seeds = ", ".join(f"{int(s)}: {x:.{digits}f}" for s, x in v.items())
    spread = f" ± {ci_half_width(v):.{digits}f} (95% CI," if len(v) > 1 else " (one seed, no CI;"
    return f"{v.mean():.{digits}f}{spread} seed {seeds})"


def versus(title: str, paper: str, what: str, a: tuple[str, pd.Series], b: tuple[str, pd.Series],
           smaller: bool, digits: int = 3, extra: str = "") -> Finding:
    """Rule: a's `what` < (or >) b's, seed by seed; a and b are (name, per-seed Series); `extra` follows."""
    both = pd.concat({"a": a[1], "b": b[1]}, axis=1).dropna()
    measured = (f"{a[0]}: {stat(both.a, digits)}; {b[0]}: {stat(both.b, digits)}; difference: "
                f"{stat(both.a - both.b, digits)}" + (f"\n\n{extra}" if extra else ""))
    return finding(title, measured, paper, f"{a[0]} {what} {'<' if smaller else '>'} {b[0]} {what}",
                   both.a < both.b if smaller else both.a > both.b)


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
    return lines + ([f"**Rule.** Agrees when {f.rule}.", "", f"**Verdict.** {f.sentence}", ""] if f.rule else [])

"""The Model selection page's tables, figure and caption: pure functions of the store's rows
(`Results.study_scores`), so the page reads top to bottom and the db tests check the same numbers."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from backend.specs.selection import RANK_SCORES
from backend.studies.selection import SCRATCH, lead_text

SCORE_NAMES = {"logme": "LogME", "leep": "LEEP", "nce": "NCE", "h_score": "H-score"}
AGREEMENT = {"weighted_tau": "weighted Kendall's tau", "spearman": "Spearman's rho", "top1": "top-1 hit"}
CANDIDATE_COLOUR, SCRATCH_COLOUR = "#ff7f0e", "#444444"  # AnB+ and baseB as every other figure draws them


def amount_choices(values: list[Any]) -> list[str]:
    """A study's data amounts as the URL spells them: numbers ascending, then "all"."""
    texts = {str(v) for v in values}
    return sorted((t for t in texts if t.isdecimal()), key=int) + sorted(t for t in texts if not t.isdecimal())


def amount_value(text: str) -> int | str:
    """The `amount` label of a URL value: 6 or "all"."""
    return int(text) if text.isdecimal() else text


def amount_words(text: str) -> str:
    return "all training images" if text == "all" else f"{text} training images per class"


def agreement_table(ranking: pd.DataFrame) -> pd.DataFrame:
    """Every amount's stored rank agreement (the rank_agreement jobs' rows), one row per amount and score,
    with the cost of scoring against fine-tuning and the job that stored it."""
    rows = []
    for stored in ranking.to_dict(orient="records"):
        for score in RANK_SCORES:
            rows.append({"amount": str(stored["amount"]), "score": SCORE_NAMES[score],
                         **{AGREEMENT[m]: stored.get(f"{score}.{m}", math.nan) for m in AGREEMENT},
                         "scoring (s)": stored.get("score_seconds"),
                         "fine-tuning (s)": stored.get("fine_tune_seconds"),
                         "fine-tuning / scoring": stored.get("cost_ratio"), "job": int(stored["job"])})
    table = pd.DataFrame(rows, columns=["amount", "score", *AGREEMENT.values(), "scoring (s)",
                                        "fine-tuning (s)", "fine-tuning / scoring", "job"])
    order = {text: i for i, text in enumerate(amount_choices(table.amount.tolist()))}
    return table.sort_values("amount", key=lambda a: a.map(order), kind="stable").reset_index(drop=True)


def number(value: Any) -> str:
    """A stored agreement as the page prints it: 3 decimals, or why there is none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a (the score is the same for every candidate)"
    return f"{value:.3f}"


def hit(value: Any) -> str:
    """A stored top-1 hit in words: NaN when the score picks no candidate."""
    return "yes" if value == 1 else "no" if value == 0 else "n/a"


def agreement_text(stored: pd.Series, score: str, candidates: int, tables: dict[str, Any]) -> str:
    """One amount's stored rank agreement of `score` over its `candidates`, the best candidate's lead
    (from the ranking job's `tables`) and the cost, in words."""
    lead = f" {lead_text(stored.to_dict(), tables)}." if "best" in tables else ""
    return (f"Stored rank agreement of {SCORE_NAMES[score]} with the mean fine-tuned accuracy over {candidates} "
            f"candidates (job {int(stored['job'])}): weighted Kendall's tau {number(stored.get(f'{score}.weighted_tau'))}, "
            f"Spearman's rho {number(stored.get(f'{score}.spearman'))}, top-1 hit {hit(stored.get(f'{score}.top1'))}."
            f"{lead} Cost: scoring every candidate took {stored.get('score_seconds'):.3g} s, fine-tuning them "
            f"{stored.get('fine_tune_seconds'):.3g} s ({stored.get('cost_ratio'):.3g}x the scoring).")


def figure_caption(score: str, amount: str, agreement: str | None) -> str:
    """What the figure shows, and the stored agreement it is judged by (or that none is stored yet)."""
    return (f"One dot per candidate source at {amount_words(amount)}: x its {SCORE_NAMES[score]} on the target "
            "(no training), y its mean fine-tuned accuracy (AnB+, every transferred unit trained) over seeds with "
            "the 95% Student t interval (clipped to 0-100%); the line and band: the target trained from scratch (baseB). A score that "
            "ranks well puts the dots in rising order. A click on a dot opens its fine-tuning runs. "
            + (agreement or "No rank agreement is stored at this amount yet: its ranking job runs once every "
               "candidate is scored and fine-tuned."))


def selection_figure(table: pd.DataFrame, score: str) -> go.Figure:
    """Score against fine-tuned accuracy, one dot per candidate (error bars: 95% t over seeds; job ids
    last in customdata), the from-scratch baseline as a line with its interval as a band."""
    fig = go.Figure()
    dots = table[table.candidate != SCRATCH].dropna(subset=[score, "accuracy"]) if score in table else table.iloc[:0]
    if not dots.empty:
        half = dots.half_width.fillna(0)
        fig.add_trace(go.Scatter(
            x=dots[score].tolist(), y=dots.accuracy.tolist(), mode="markers+text", text=dots.candidate.tolist(),
            textposition="top center", name="candidates", marker={"size": 11, "color": CANDIDATE_COLOUR},
            # The interval clipped to what an accuracy can be: two seeds' t (12.7) easily passes 100%.
            error_y={"type": "data", "array": (100 - dots.accuracy).clip(upper=half).tolist(),
                     "arrayminus": dots.accuracy.clip(upper=half).tolist(), "visible": True},
            customdata=dots[["candidate", "seeds", "jobs"]].values.tolist(),
            hovertemplate=f"%{{customdata[0]}}: {SCORE_NAMES[score]} %{{x:.4g}}, accuracy %{{y:.2f}}% over "
                          "%{customdata[1]} seeds (jobs %{customdata[2]})<extra></extra>"))
    scratch = table[table.candidate == SCRATCH].dropna(subset=["accuracy"])
    if not scratch.empty:
        base = scratch.iloc[0]
        if not math.isnan(base.half_width):
            fig.add_hrect(y0=max(base.accuracy - base.half_width, 0), y1=min(base.accuracy + base.half_width, 100),
                          line_width=0, fillcolor=SCRATCH_COLOUR, opacity=0.12)
        fig.add_hline(y=base.accuracy, line_dash="dot", line_color=SCRATCH_COLOUR,
                      annotation_text=f"from scratch {base.accuracy:.1f}%", annotation_position="bottom right")
    fig.update_layout(xaxis_title=f"{SCORE_NAMES[score]} on the target (higher: predicted to transfer better)",
                      yaxis_title="fine-tuned accuracy (%)", showlegend=False, height=460)
    return fig


SHOWN = {"accuracy": "accuracy (%)", "half_width": "± 95% t", "fine_tune_seconds": "training (s)",
         "score_seconds": "scoring (s)", **SCORE_NAMES}


def shown_table(table: pd.DataFrame) -> pd.DataFrame:
    """The candidate table as the page lists it: names a reader knows, job ids last. "training (s)" is a
    candidate's fine-tuning, or the from-scratch baseline's training on its row."""
    first = ["candidate", "accuracy", "half_width", "seeds", *[s for s in RANK_SCORES if s in table]]
    kept = [*first, *[c for c in ("score_seconds", "fine_tune_seconds") if c in table], "jobs"]
    return table[[c for c in kept if c in table]].rename(columns=SHOWN)

"""Model selection: score K candidate sources on a target, fine-tune each, rank (You et al. 2021).

Per candidate: its network (pretrained here on its source task, imported from a file, or a lab
network). Per candidate and data amount: LogME, LEEP, NCE and H-score on the target's training images
(no training), and the candidate fine-tuned on the target once per seed (AnB+: its first n units
copied, every unit trained). Per amount, a ranking job reads those results and stores how well each
score ranks the candidates by their mean fine-tuned accuracy. Optionally the target from scratch
(baseB), so "does any candidate help at all?" has an answer too.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from backend.specs import ProbeImages, ScoresJobSpec, TrainJobSpec, TransferJobSpec
from backend.specs.selection import RANK_SCORES, ModelSelectionSpec, RankAgreementJobSpec, RankedCandidate
from backend.stats import t_half_width
from backend.studies.cross import ALL
from backend.studies.plan import PlannedJob
from backend.studies.yosinski import TRANSFER_SEED_OFFSET

if TYPE_CHECKING:
    from backend.studies.local import JobOutcome

SCRATCH = "from scratch"  # the candidate label of the baseline networks


def expand(study: ModelSelectionSpec) -> list[PlannedJob]:
    """Candidates' networks first, then scores and fine-tunings, then one ranking per amount."""
    plan: list[PlannedJob] = []
    sources = {}
    for c in study.candidates:
        sources[c.name] = PlannedJob(study.source_job(c), {"candidate": c.name, "treatment": "baseA", "n": 0})
        plan.append(sources[c.name])
    for amount in study.amounts:
        at = {"amount": ALL if amount is None else amount}
        ranked = []
        for c in study.candidates:
            data = _amount(study.input_format(c).apply(study.target), amount)
            s = study.scores
            images = ProbeImages(data=data, split="train", images=s.images, seed=s.seed)
            scores = PlannedJob(ScoresJobSpec(network=sources[c.name].key, settings=s, images=images),
                                {"candidate": c.name, **at, "probe": "scores"})
            units = study.units(c)
            tuned = [PlannedJob(TransferJobSpec(data=data, model=study.model_of(c), train=_seeded(study, seed),
                                                source=sources[c.name].spec,
                                                transfer={"n": units, "fine_tune": True}),
                                {"candidate": c.name, **at, "seed": seed, "treatment": "AnB+", "n": units})
                     for seed in study.seeds]
            plan += [scores, *tuned]
            ranked.append(RankedCandidate(name=c.name, scores=scores.key, fine_tuned=[j.key for j in tuned]))
        if study.baseline:
            data = _amount(study.input.apply(study.target), amount)
            plan += [PlannedJob(TrainJobSpec(data=data, model=study.model, train=_seeded(study, seed)),
                                {"candidate": SCRATCH, **at, "seed": seed, "treatment": "baseB", "n": 0})
                     for seed in study.seeds]
        plan.append(PlannedJob(RankAgreementJobSpec(amount=amount, candidates=ranked), {**at, "probe": "ranking"}))
    return plan


def _amount(data, amount: int | None):
    return data if amount is None else data.model_copy(update={"per_class": amount})


def _seeded(study: ModelSelectionSpec, seed: int):
    return study.train.model_copy(update={"seed": seed + TRANSFER_SEED_OFFSET})


def axes(study: ModelSelectionSpec) -> dict[str, Any]:
    return {}


TUNED = ("AnB+", "baseB")  # a candidate fine-tuned on the target; the target trained from scratch


def candidates(outcomes: list[JobOutcome]) -> pd.DataFrame:
    """`candidate_table` at every amount of a local run, the study's candidates in the order it lists them."""
    rows = pd.DataFrame([{**o.job.labels, **o.output.scalars, "job": o.job.key[:16]} for o in outcomes])
    if rows.empty or "candidate" not in rows or "treatment" not in rows:
        return pd.DataFrame()
    order = [c for c in dict.fromkeys(rows.candidate.dropna()) if c != SCRATCH]
    rows = rows[rows.amount.notna()]
    return pd.concat([candidate_table(part, order).assign(amount=int(amount) if isinstance(amount, float) else amount)
                      for amount, part in rows.groupby("amount", sort=False)], ignore_index=True)


def candidate_table(rows: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Per candidate at one amount (the scores, fine-tuning and baseline rows of one amount): mean
    fine-tuned accuracy (%) over its succeeded seeds with the 95% t half-width (NaN with one seed), the
    seeds, the fine-tuning jobs (comma-separated), each score and the scoring job; the study's candidates
    in `order`, the from-scratch baseline last. A candidate scored but not yet fine-tuned has no accuracy."""
    columns = ["candidate", "accuracy", "half_width", "seeds", "jobs", "fine_tune_seconds"]
    tuned = rows[rows.treatment.isin(TUNED) & rows.final_accuracy.notna()] \
        if {"treatment", "final_accuracy"} <= set(rows) else pd.DataFrame()
    if tuned.empty:
        table = pd.DataFrame(columns=columns)
    else:
        tuned = tuned.assign(value=100 * tuned.final_accuracy,
                             train_seconds=tuned.get("train_seconds", pd.Series(0.0, index=tuned.index)))
        table = tuned.groupby("candidate", sort=False).agg(
            accuracy=("value", "mean"), std=("value", "std"), seeds=("value", "size"),
            jobs=("job", lambda j: ",".join(map(str, sorted(j)))), fine_tune_seconds=("train_seconds", "sum"))
        table["half_width"] = [t_half_width(s, n) if n > 1 else math.nan for s, n in zip(table["std"], table.seeds)]
        table = table.reset_index()[columns]
    scored = rows[rows.probe == "scores"] if "probe" in rows else pd.DataFrame()
    if not scored.empty:
        kept = scored[["candidate", "job", *[s for s in RANK_SCORES if s in scored], "seconds"]]
        table = table.merge(kept.rename(columns={"job": "score_job", "seconds": "score_seconds"}),
                            on="candidate", how="outer")
        scoring = table.score_job.map(lambda j: str(int(j)) if isinstance(j, float) else str(j),
                                      na_action="ignore")
        table["jobs"] = table.jobs.fillna(scoring).fillna("")  # not fine-tuned yet: its scoring job
    rank = {name: i for i, name in enumerate([*order, SCRATCH])}
    table = table.assign(_at=table.candidate.map(lambda c: rank.get(c, len(rank))))
    return table.sort_values("_at", kind="stable").drop(columns="_at").reset_index(drop=True)


def rankings(outcomes: list[JobOutcome]) -> pd.DataFrame:
    """Per amount and score: weighted Kendall's tau, Spearman's rho and the top-1 hit, as stored."""
    rows = []
    for o in outcomes:
        if o.job.labels.get("probe") == "ranking":
            s = o.output.scalars
            rows += [{"amount": o.job.labels["amount"], "score": score,
                      **{m: s.get(f"{score}.{m}") for m in ("weighted_tau", "spearman", "top1")}}
                     for score in RANK_SCORES]
    return pd.DataFrame(rows)


def lead_text(scalars: dict[str, float], tables: dict[str, Any]) -> str:
    """'digits 0-4 is best, 1.2 points [-0.8, 3.2] ahead of synthetic (paired over seeds): undecided'."""
    low, high = scalars.get("lead_low"), scalars.get("lead_high")
    if low is None or pd.isna(low):
        verdict = "one seed, no interval"
    else:
        verdict = ("decided" if low > 0
                   else "undecided: the interval reaches 0, so no score can be judged on the top spot")
    interval = "" if low is None or pd.isna(low) else f" [{low:.2f}, {high:.2f}]"
    return (f"{tables.get('best')} fine-tunes best, {scalars.get('lead', float('nan')):.2f} points{interval} ahead of "
            f"{tables.get('runner_up')} (paired over seeds): {verdict}")


def summarise(outcomes: list[JobOutcome]) -> tuple[pd.DataFrame, str, dict[str, Any]]:
    table = candidates(outcomes)
    if table.empty:
        return table, "no candidate was fine-tuned", {}
    ranked = rankings(outcomes)
    shown = table.drop(columns=["jobs", "score_job"], errors="ignore")
    shown = shown[["amount", *[c for c in shown if c != "amount"]]]
    parts = ["per candidate: mean fine-tuned accuracy (%) over seeds, ±95% t half-width, and each score "
             "(no training)", shown.round(3).to_string(index=False)]
    if not ranked.empty:
        parts += [f"\nat {o.job.labels['amount']} images per class: {lead_text(o.output.scalars, o.output.tables)}"
                  for o in outcomes if o.job.labels.get("probe") == "ranking"]
        parts += ["\nrank agreement of each score with the fine-tuned accuracy (You et al. 2021): weighted "
                  "Kendall's tau, Spearman's rho, top-1 hit (1 = the best-scored candidate is the best fine-tuned)",
                  ranked.round(3).to_string(index=False)]
    # The candidates' fine-tunings against their scoring, as the ranking job stores it; the from-scratch
    # baseline is no candidate, so its training is said apart.
    baseline = table.candidate == SCRATCH
    scoring = table.get("score_seconds", pd.Series(dtype=float)).sum()
    tuning, scratch = table.fine_tune_seconds[~baseline].sum(), table.fine_tune_seconds[baseline].sum()
    parts.append(f"\ncost: scoring {scoring:.3g} s, fine-tuning the candidates {tuning:.3g} s "
                 f"({tuning / max(scoring, 1e-9):.3g}x the scoring)"
                 + (f"; the from-scratch baseline trained {scratch:.3g} s" if baseline.any() else ""))
    checks = {f"{r.score}_weighted_tau": r.weighted_tau for r in ranked.itertuples() if r.weighted_tau is not None}
    return table, "\n".join(parts), checks

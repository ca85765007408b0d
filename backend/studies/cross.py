"""Cross-data-set transfer: how domain gap, data amount and depth of transfer move what transfers.

Per seed: pretrain baseA on the source once. Per target and data amount: train baseB from scratch
(RI-T) and, for every n, a network whose first n units come from baseA, frozen (AnB) or fine-tuned
with the rest (AnB+). Measurements, when the study asks: the domain gap source -> target and the
target's diversity (per seed and target), Chen et al.'s T of every AnB+ network against baseA, and
transferability scores of baseA on each target and amount (no fine-tuning).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from backend.specs import (
    ChenJobSpec, CrossDatasetSpec, DataSpec, DomainGapJobSpec, ProbeImages, ScoresJobSpec, TrainJobSpec,
    TransferJobSpec, spec_hash, unit_names,
)
from backend.studies.plan import PlannedJob
from backend.studies.yosinski import TRANSFER_SEED_OFFSET

if TYPE_CHECKING:
    from backend.studies.local import JobOutcome

ALL = "all"  # the amount label of a target trained on all its images


def expand(study: CrossDatasetSpec) -> list[PlannedJob]:
    """Pretrainings first, then each target's networks, then the measurements that read them.
    Identical jobs (a scratch run another study already has) share one key: they run once."""
    plan: list[PlannedJob] = []
    source = study.formatted(study.source)
    for seed in study.seeds:
        pretrain = TrainJobSpec(data=source, model=study.model, train=study.train.model_copy(update={"seed": seed}))
        base_a = PlannedJob(pretrain, {"seed": seed, "treatment": "baseA", "n": 0})
        plan.append(base_a)
        target_train = study.train.model_copy(update={"seed": seed + TRANSFER_SEED_OFFSET})
        probes: list[PlannedJob] = []
        for target in study.targets:
            task = study.formatted(target.data)
            where = {"seed": seed, "target": target.name}
            if study.probes.gap is not None:
                probes.append(_gap(study, base_a, source, task, where))
            for amount in study.amounts:
                data = task.model_copy(update={"per_class": amount}) if amount is not None else task
                labels = {**where, "amount": ALL if amount is None else amount}
                plan.append(PlannedJob(TrainJobSpec(data=data, model=study.model, train=target_train),
                                       {**labels, "treatment": "baseB", "n": 0}))
                for treatment in study.treatments:
                    for n in study.n_values:
                        spec = TransferJobSpec(data=data, model=study.model, train=target_train, source=pretrain,
                                               transfer={"n": n, "fine_tune": treatment.endswith("+")})
                        network = PlannedJob(spec, {**labels, "treatment": treatment, "n": n})
                        plan.append(network)
                        if study.probes.chen_t and treatment == "AnB+":
                            probes.append(PlannedJob(ChenJobSpec(pretrained=base_a.key, fine_tuned=network.key, units=n),
                                                     {**network.labels, "probe": "chen_t"}))
                if study.probes.scores is not None:
                    s = study.probes.scores
                    images = ProbeImages(data=data, split="train", images=s.images, seed=s.seed)
                    probes.append(PlannedJob(ScoresJobSpec(network=base_a.key, images=images, settings=s),
                                             {**labels, "probe": "scores"}))
        plan += probes
    return plan


def _gap(study: CrossDatasetSpec, base_a: PlannedJob, source: DataSpec, target: DataSpec,
         labels: dict[str, Any]) -> PlannedJob:
    s = study.probes.gap
    draw = {"split": "test", "images": s.images, "seed": s.seed}
    spec = DomainGapJobSpec(network=base_a.key, source=ProbeImages(data=source, **draw),
                            target=ProbeImages(data=target, **draw), settings=s)
    return PlannedJob(spec, {**labels, "probe": "gap"})


def axes(study: CrossDatasetSpec) -> dict[str, Any]:
    """Study-level values of the explorer's axes (targets and amounts vary within the study)."""
    return {"depth": len(unit_names(study.model)) - 1}


def rows(outcomes: list[JobOutcome]) -> pd.DataFrame:
    """One row per target network: seed, target, amount, treatment, n, final accuracy (%), gain over
    baseB (RI-T) of the same seed, target and amount, and Chen's T for AnB+."""
    networks, chen = [], {}
    for o in outcomes:
        labels, scalars = o.job.labels, o.output.scalars
        if labels.get("probe") == "chen_t":
            chen[(labels["seed"], labels["target"], labels["amount"], labels["n"])] = {
                "chen_t": scalars.get("t_overall"), **{k: v for k, v in scalars.items() if k.startswith("t.")}}
        elif "probe" not in labels and "target" in labels:
            networks.append({**{k: labels[k] for k in ("seed", "target", "amount", "treatment", "n")},
                             "final": 100 * scalars["final_accuracy"], "job": o.job.key[:16]})
    table = pd.DataFrame(networks)
    if table.empty:
        return table
    keys = ["seed", "target", "amount"]
    base = table[table.treatment == "baseB"].set_index(keys)["final"].rename("baseB")
    table = table.join(base, on=keys)
    table["gain"] = table["final"] - table.pop("baseB")
    per_layer = pd.DataFrame([chen.get((r.seed, r.target, r.amount, r.n), {}) if r.treatment == "AnB+" else {}
                              for r in table.itertuples()], index=table.index)
    return table.join(per_layer) if not per_layer.empty else table.assign(chen_t=None)


def gaps(outcomes: list[JobOutcome]) -> pd.DataFrame:
    """Per seed and target: the measured gap (A-distance, MMD) and the target's diversity."""
    found = [{"seed": o.job.labels["seed"], "target": o.job.labels["target"], **o.output.scalars}
             for o in outcomes if o.job.labels.get("probe") == "gap"]
    return pd.DataFrame(found)


SCORES = ("logme", "leep", "nce", "h_score")  # the transferability scores a `scores` job stores


def score_ranking(outcomes: list[JobOutcome], table: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rho and Kendall's tau of each transferability score (mean over seeds) with the gain
    of AnB+ at the deepest n over RI-T, one point per (target, amount); empty with fewer than 3 points."""
    from backend.probes.transferability import rank_correlation  # here: this module stays torch-free

    found = pd.DataFrame([{k: o.job.labels[k] for k in ("seed", "target", "amount")} | o.output.scalars
                          for o in outcomes if o.job.labels.get("probe") == "scores"])
    deepest = table[(table.treatment == "AnB+") & (table.n == table.n.max())]
    if found.empty or deepest.empty:
        return pd.DataFrame()
    keys = ["target", "amount"]
    points = found.groupby(keys)[list(SCORES)].mean().join(deepest.groupby(keys)["gain"].mean(), how="inner")
    if len(points) < 3:
        return pd.DataFrame()
    return pd.DataFrame({score: rank_correlation(points[score].tolist(), points["gain"].tolist())
                         for score in SCORES if points[score].nunique() > 1}).T[["spearman", "kendall", "targets"]]


def summarise(outcomes: list[JobOutcome]) -> tuple[pd.DataFrame, str, dict[str, Any]]:
    """What the CLI prints: per target, the measured gap, each treatment's accuracy and gain over RI-T."""
    table = rows(outcomes)
    if table.empty:
        return table, "no target network ran", {}
    seeds = sorted(int(s) for s in table.seed.unique())
    parts = [f"mean over seeds {seeds}; gain = accuracy minus baseB's (RI-T), same seed, target and amount"]
    measured = gaps(outcomes)
    if not measured.empty:
        cols = [c for c in ("a_distance", "mmd2_linear", "mmd2_rbf", "diversity", "classes") if c in measured]
        parts.append("\nmeasured domain gap (pretrained features), per target\n"
                     + measured.groupby("target", sort=False)[cols].mean().round(4).to_string())
    for value, what in (("final", "final test accuracy (%)"), ("gain", "gain over RI-T (points)"),
                        ("chen_t", "Chen's T, overall (AnB+)")):
        if table[value].notna().any():
            pivot = table.pivot_table(index=["target", "amount"], columns=["treatment", "n"], values=value,
                                      aggfunc="mean", sort=False)
            parts.append(f"\n{what}\n" + pivot.round(3 if value == "chen_t" else 2).to_string(na_rep=""))
    ranking = score_ranking(outcomes, table)
    if not ranking.empty:
        parts.append("\nscores against the measured gain of AnB+ at the deepest n, across targets and amounts\n"
                     + ranking.round(3).to_string())
    layers = [c for c in table if c.startswith("t.")]
    if layers:
        deepest = table[(table.treatment == "AnB+") & (table.n == table.n.max())]
        parts.append(f"\nChen's T per layer (AnB+, n = {int(table.n.max())}), mean over seeds\n"
                     + deepest.groupby(["target", "amount"], sort=False)[layers].mean().round(2).to_string())
    checks = {f"gain_{t}": v for t, v in table[table.treatment != "baseB"].groupby("treatment")["gain"].mean().items()}
    return table, "\n".join(parts), checks

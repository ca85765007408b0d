"""Neyshabur et al. 2020, "What is being transferred in transfer learning?": the basins study.

Per seed: pretrain baseA on the source. Per target: `runs` networks fine-tuned from baseA (P-T:
AnB+, every unit but the classifier copied) and `runs` trained from scratch (RI-T: baseB), each
with its own training seed. Between every pair of runs of a kind (and, when asked, the first P-T and
the first RI-T run): the linear interpolation path and its barrier, their mistake overlap and
parameter distance, and CKA. On every run: module criticality; around the first of each kind,
optionally, the loss plane. The paper's finding: no barrier between P-T runs, a barrier between
RI-T runs; P-T runs closer in parameters, more similar in features, less critical modules.
"""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING, Any

import pandas as pd

from backend.specs import (
    BasinsSpec, CriticalityJobSpec, InterpolationJobSpec, PlaneJobSpec, ProbeImages, SimilarityJobSpec, TrainJobSpec,
    TransferJobSpec,
)
from backend.studies.plan import PlannedJob
from backend.studies.yosinski import TRANSFER_SEED_OFFSET

if TYPE_CHECKING:
    from backend.studies.local import JobOutcome

RUN_SEED_STRIDE = 10_000  # run r trains with seed + 1000 + r * stride: run 0 is a cross-data-set study's network
KINDS = {"AnB+": "P-T", "baseB": "RI-T"}  # Neyshabur's names for the two kinds of run


def expand(study: BasinsSpec) -> list[PlannedJob]:
    """Pretrainings, then each target's runs, then the probes between and on them."""
    plan: list[PlannedJob] = []
    p = study.probes
    for seed in study.seeds:
        pretrain = study.pretraining(seed)
        plan.append(PlannedJob(pretrain, {"seed": seed, "treatment": "baseA", "n": 0}))
        probes: list[PlannedJob] = []
        for target in study.targets:
            data = study.input_format.apply(target.data)
            runs: dict[str, list[PlannedJob]] = {"AnB+": [], "baseB": []}
            for r in range(study.runs):
                train = study.train.model_copy(update={"seed": seed + TRANSFER_SEED_OFFSET + r * RUN_SEED_STRIDE})
                where = {"seed": seed, "target": target.name, "run": r}
                runs["baseB"].append(PlannedJob(TrainJobSpec(data=data, model=study.model, train=train),
                                                {**where, "treatment": "baseB", "n": 0}))
                runs["AnB+"].append(PlannedJob(
                    TransferJobSpec(data=data, model=study.model, train=train, source=pretrain,
                                    transfer={"n": study.units, "fine_tune": True}),
                    {**where, "treatment": "AnB+", "n": study.units}))
            plan += runs["baseB"] + runs["AnB+"]
            images = ProbeImages(data=data, split="test", images=p.images, seed=0)
            pairs = [(KINDS[t], a, b) for t, jobs in runs.items() for a, b in combinations(jobs, 2)]
            if p.across:
                pairs.append(("P-T vs RI-T", runs["AnB+"][0], runs["baseB"][0]))
            for pair, a, b in pairs:
                labels = {"seed": seed, "target": target.name, "pair": pair, "runs": f"{a.labels['run']}-{b.labels['run']}"}
                if p.interpolation is not None:
                    probes.append(PlannedJob(InterpolationJobSpec(a=a.key, b=b.key, images=images,
                                                                  settings=p.interpolation),
                                             {**labels, "probe": "interpolation"}))
                if p.similarity is not None:
                    cka = images.model_copy(update={"images": p.similarity.images, "split": p.similarity.split})
                    probes.append(PlannedJob(SimilarityJobSpec(a=a.key, b=b.key, images=cka, settings=p.similarity),
                                             {**labels, "probe": "similarity"}))
            for job in runs["baseB"] + runs["AnB+"]:
                if p.criticality is not None:
                    probes.append(PlannedJob(CriticalityJobSpec(network=job.key, images=images, settings=p.criticality),
                                             {**job.labels, "probe": "criticality"}))
                if p.plane is not None and job.labels["run"] == 0:
                    probes.append(PlannedJob(PlaneJobSpec(network=job.key, images=images, settings=p.plane),
                                             {**job.labels, "probe": "plane"}))
        plan += probes
    return plan


def axes(study: BasinsSpec) -> dict[str, Any]:
    return {}


def summarise(outcomes: list[JobOutcome]) -> tuple[pd.DataFrame, str, dict[str, Any]]:
    """Per target and pair kind: the barrier, the CKA, the parameter distance and the mistake overlap;
    per target and kind of run: the accuracy and module criticality."""
    pairs: dict[tuple, dict[str, Any]] = {}
    runs = []
    for o in outcomes:
        labels, scalars = o.job.labels, o.output.scalars
        probe = labels.get("probe")
        if probe in ("interpolation", "similarity"):
            row = pairs.setdefault((labels["seed"], labels["target"], labels["pair"], labels["runs"]),
                                   {k: labels[k] for k in ("seed", "target", "pair", "runs")})
            if probe == "interpolation":
                row.update(barrier=scalars["barrier"], accuracy_barrier=scalars["accuracy_barrier"],
                           l2_distance=scalars["l2_distance"], mistake_jaccard=scalars["mistakes.mistake_jaccard"])
            else:
                row["cka_mean_diagonal"] = scalars["cka_diagonal_mean"]
        elif probe is None and "run" in labels:
            runs.append({"seed": labels["seed"], "target": labels["target"], "kind": KINDS[labels["treatment"]],
                         "run": labels["run"], "final": 100 * scalars["final_accuracy"],
                         "epochs_to_90pct": scalars.get("epochs_to_90pct"), "job": o.job.key[:16]})
        elif probe == "criticality":
            runs_key = (labels["seed"], labels["target"], labels["treatment"], labels["run"])
            pairs.setdefault(("criticality",) + runs_key, {"seed": labels["seed"], "target": labels["target"],
                                                           "kind": KINDS[labels["treatment"]], "run": labels["run"],
                                                           **{k: v for k, v in scalars.items()
                                                              if k.startswith("rewind.")}})
    between = pd.DataFrame([r for k, r in pairs.items() if k[0] != "criticality"])
    critical = pd.DataFrame([r for k, r in pairs.items() if k[0] == "criticality"])
    table = pd.DataFrame(runs)
    parts = []
    if not table.empty:
        parts.append("final test accuracy (%) and epochs to 90% of the best, per kind of run (mean over runs and "
                     "seeds)\n" + table.groupby(["target", "kind"])[["final", "epochs_to_90pct"]].mean().round(2)
                     .to_string())
    checks: dict[str, Any] = {}
    if not between.empty:
        cols = [c for c in ("barrier", "accuracy_barrier", "l2_distance", "mistake_jaccard", "cka_mean_diagonal")
                if c in between]
        means = between.groupby(["target", "pair"])[cols].mean()
        parts.append("\nbetween runs (mean over pairs and seeds)\n" + means.round(4).to_string())
        by_pair = between.groupby("pair")[cols].mean()
        checks = {f"{c}_{pair}": v for pair, row in by_pair.iterrows() for c, v in row.items()}
    if not critical.empty:
        units = [c for c in critical if c.startswith("rewind.")]
        parts.append("\nrewind tolerance per unit (smallest a keeping the error within epsilon; lower = less "
                     "critical)\n" + critical.groupby(["target", "kind"])[units].mean().round(2).to_string())
    return table, "\n".join(parts) or "no run finished", checks

"""Yosinski et al. 2014, "How transferable are features in deep neural networks?"

Per seed: split the classes into random halves A and B, train baseA and baseB, then train on B with
the first n units copied from baseA (AnB) or baseB (BnB), frozen or fine-tuned (+), or left random
and frozen (the control), for every n. The score is the mean of the 10 best test evaluations; the
final accuracy is kept too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from backend.specs import DataSpec, TrainJobSpec, TransferJobSpec, YosinskiSpec
from backend.studies.plan import PlannedJob, transfer_source_key

if TYPE_CHECKING:
    from backend.studies.local import JobOutcome

# Transfers draw their re-initialised units from a seed disjoint from their base networks', so the
# layers above n never restart from the base network's own initial weights.
TRANSFER_SEED_OFFSET = 1000


def expand(study: YosinskiSpec) -> list[PlannedJob]:
    """The study's jobs, bases before the transfers that depend on them."""
    plan: list[PlannedJob] = []
    for seed in study.seeds:
        base = {half: TrainJobSpec(data=_half(study.data, half, seed), model=study.model,
                                   train=study.train.model_copy(update={"seed": seed}))
                for half in ("A", "B")}
        for half, spec in base.items():
            plan.append(PlannedJob(spec, {"seed": seed, "treatment": f"base{half}", "n": 0}))
        target_train = study.train.model_copy(update={"seed": seed + TRANSFER_SEED_OFFSET})
        for treatment in study.treatments:
            for n in study.n_values:
                spec = TransferJobSpec(
                    data=base["B"].data, model=study.model, train=target_train,
                    source=None if treatment == "random" else base[treatment[0]],
                    transfer={"n": n, "init": "random" if treatment == "random" else "source",
                              "fine_tune": treatment.endswith("+")},
                )
                plan.append(PlannedJob(spec, {"seed": seed, "treatment": treatment, "n": n},
                                       transfer_source_key(spec)))
    return plan


def _half(data: DataSpec, half: str, seed: int) -> DataSpec:
    classes = data.classes.model_copy(update={"half": half, "seed": seed})
    return data.model_copy(update={"classes": classes})


def rows(outcomes: list[JobOutcome]) -> pd.DataFrame:
    """One row per job: its labels, final and best-10 test accuracy (%), seconds, spec hash."""
    return pd.DataFrame([{
        **o.job.labels,
        "final": 100 * o.result["final_accuracy"],
        "best10": 100 * o.result["best10_accuracy"],
        "seconds": o.seconds,
        "job": o.job.key[:16],
    } for o in outcomes])


def summary(table: pd.DataFrame, score: str = "final") -> pd.DataFrame:
    """n x treatment, mean over seeds of `score`; baseB sits at n = 0 as the reference."""
    pivot = table.pivot_table(index="n", columns="treatment", values=score, aggfunc="mean")
    order = [t for t in ("baseB", "baseA", "BnB", "BnB+", "AnB", "AnB+", "random") if t in pivot.columns]
    return pivot[order]


def describe(table: pd.DataFrame) -> dict[str, Any]:
    """The paper's qualitative checks, measured: numbers a reader can compare with its figure."""
    base_b = table.loc[table.treatment == "baseB", "final"].mean()
    means = table[table.n > 0].groupby("treatment")["final"].mean()
    return {"baseB": base_b, **{f"{t}_mean": v for t, v in means.items()},
            **({"AnB+_minus_baseB": means["AnB+"] - base_b} if "AnB+" in means else {})}

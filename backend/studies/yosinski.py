"""Yosinski et al. 2014, "How transferable are features in deep neural networks?"

Per seed: split the classes into random halves A and B, train baseA and baseB, then train on B with
the first n units copied from baseA (AnB) or baseB (BnB), frozen or fine-tuned (+), or left random
and frozen (the control), for every n. The score is the mean of the 10 best test evaluations; the
final accuracy is kept too. Probes, when the study asks for them: the Hessian sharpness of every
network, and CKA of each transfer against baseB and against the network its units came from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from backend.specs import (
    DataSpec, ProbeImages, SharpnessJobSpec, SimilarityJobSpec, TrainJobSpec, TransferJobSpec, YosinskiSpec,
    spec_hash, unit_names,
)
from backend.studies.plan import PlannedJob

if TYPE_CHECKING:
    from backend.studies.local import JobOutcome

# Transfers draw their re-initialised units from a seed disjoint from their base networks', so the
# layers above n never restart from the base network's own initial weights.
TRANSFER_SEED_OFFSET = 1000


def expand(study: YosinskiSpec) -> list[PlannedJob]:
    """The study's jobs, bases before the transfers that depend on them, probes last."""
    plan: list[PlannedJob] = []
    for seed in study.seeds:
        base = {half: TrainJobSpec(data=_half(study, half, seed), model=study.model,
                                   train=study.train.model_copy(update={"seed": seed}))
                for half in ("A", "B")}
        networks = [PlannedJob(spec, {"seed": seed, "treatment": f"base{half}", "n": 0}) for half, spec in base.items()]
        target_train = study.train.model_copy(update={"seed": seed + TRANSFER_SEED_OFFSET})
        for treatment in study.treatments:
            for n in study.n_values:
                spec = TransferJobSpec(
                    data=base["B"].data, model=study.model, train=target_train,
                    source=None if treatment == "random" else base[treatment[0]],
                    transfer={"n": n, "init": "random" if treatment == "random" else "source",
                              "fine_tune": treatment.endswith("+")},
                )
                networks.append(PlannedJob(spec, {"seed": seed, "treatment": treatment, "n": n}))
        base_keys = {f"base{half}": spec_hash(spec) for half, spec in base.items()}
        plan += networks + probes(study.probes, networks, base_keys, base["B"].data)
    return plan


def probes(settings: Any, networks: list[PlannedJob], base: dict[str, str], data: DataSpec) -> list[PlannedJob]:
    """Sharpness of every network; CKA of every transfer against baseB and against the base network
    its units came from (for BnB that is baseB itself, one job), and of baseA against baseB.

    `settings` has `sharpness`, `similarity` and `treatments` (StudyProbes, CrossProbes); `base` maps
    base network names (baseA, baseB) to their job keys; CKA is measured on the images of `data`."""
    jobs = []
    chosen = settings.treatments
    probed = [job for job in networks if chosen is None or job.labels["treatment"] in chosen]
    if settings.sharpness is not None:
        s = settings.sharpness
        for job in probed:
            images = ProbeImages(data=job.spec.data, split=s.split, images=s.images, seed=s.seed)
            spec = SharpnessJobSpec(network=job.key, cut=job.labels["n"], images=images, settings=s)
            jobs.append(PlannedJob(spec, {**job.labels, "probe": "sharpness"}))
    if settings.similarity is not None:
        s = settings.similarity
        images = ProbeImages(data=data, split=s.split, images=s.images, seed=s.seed)
        for job in probed:
            for other in compared_with(job.labels["treatment"]):
                spec = SimilarityJobSpec(a=job.key, b=base[other], images=images, settings=s)
                jobs.append(PlannedJob(spec, {**job.labels, "probe": "similarity", "against": other}))
    return jobs


def compared_with(treatment: str) -> list[str]:
    """The base networks a network's CKA is measured against: baseB, the target trained from
    scratch, and the base its units came from (baseB too for BnB: one job)."""
    if treatment == "baseB":
        return []
    source = {"AnB": "baseA", "AnB+": "baseA"}.get(treatment)
    return sorted({"baseB", source} - {None})


def axes(study: YosinskiSpec) -> dict[str, Any]:
    """Study-level values of the explorer's axes (None where the study does not set one)."""
    data = study.data
    blocks = [s.block for s in data.shifts if s.kind == "block_shuffle"]
    return {"per_class": data.per_class, "class_fraction": data.classes.fraction or 1.0,
            "domain_gap": getattr(data.source, "gap", None), "block": blocks[0] if blocks else 0,
            "depth": len(unit_names(study.model)) - 1}


def _half(study: YosinskiSpec, half: str, seed: int) -> DataSpec:
    """Class group A or B: the study's own groups, or the seed's random half."""
    data = study.data
    if study.groups is not None:
        update = {"include": study.groups["AB".index(half)]}
    else:
        update = {"half": half, "seed": seed}
    return data.model_copy(update={"classes": data.classes.model_copy(update=update)})


def rows(outcomes: list[JobOutcome]) -> pd.DataFrame:
    """One row per network: its labels, final and best-10 test accuracy (%), seconds, spec hash, and
    its probes' summaries (Hessian top eigenvalue and trace; mean CKA diagonal against each base)."""
    table: dict[tuple, dict[str, Any]] = {}
    for o in outcomes:
        labels, scalars = o.job.labels, o.output.scalars
        row = table.setdefault((labels["seed"], labels["treatment"], labels["n"]), {
            "seed": labels["seed"], "treatment": labels["treatment"], "n": labels["n"]})
        if "probe" not in labels:
            row.update(final=100 * scalars["final_accuracy"], best10=100 * scalars["best10_accuracy"],
                       seconds=o.seconds, job=o.job.key[:16])
        elif labels["probe"] == "sharpness":
            row.update(top_eigenvalue=scalars["top_eigenvalue"], trace=scalars["trace"])
        else:
            row[f"cka_vs_{labels['against']}"] = scalars["cka_diagonal_mean"]
    return pd.DataFrame(list(table.values()))


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


def summarise(outcomes: list[JobOutcome]) -> tuple[pd.DataFrame, str, dict[str, Any]]:
    """What the CLI prints after a sweep: the per-job table, the n x treatment tables, the checks."""
    table = rows(outcomes)
    seeds = sorted(int(s) for s in table.seed.unique())
    parts = []
    for score, what in (("final", "final test accuracy (%)"), ("best10", "mean of the 10 best evaluations (%)"),
                        ("top_eigenvalue", "Hessian top eigenvalue"), ("trace", "Hessian trace"),
                        ("cka_vs_baseB", "mean CKA diagonal against baseB")):
        if score in table and table[score].notna().any():
            parts.append(f"\n{what}, mean over seeds {seeds}; baseB at n = 0\n"
                         + summary(table, score).round(3 if score.startswith("cka") else 2).to_string(na_rep=""))
    checks = describe(table)
    parts.append("\n" + "  ".join(f"{k} {v:.2f}" for k, v in checks.items()))
    return table, "\n".join(parts), checks

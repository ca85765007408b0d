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
    ChenJobSpec, CrossDatasetSpec, DataSpec, DomainGapJobSpec, ProbeImages, ScoresJobSpec, SmoothnessJobSpec,
    TrainJobSpec, TransferJobSpec, unit_names,
)
from backend.stats import rank_correlation
from backend.studies.plan import PlannedJob
from backend.studies.yosinski import TRANSFER_SEED_OFFSET, probes as network_probes

if TYPE_CHECKING:
    from backend.studies.local import JobOutcome

ALL = "all"  # the amount label of a target trained on all its images
# The labels that say which setting a target network was trained in: its baseB shares them.
SETTING = ("seed", "depth", "target", "class_fraction", "amount")
# The labels that name one target network (a study with source epochs labels its transfers with one).
NETWORK = (*SETTING, "source_epoch", "treatment", "n")


def expand(study: CrossDatasetSpec) -> list[PlannedJob]:
    """Pretrainings first, then each target's networks, then the measurements that read them.
    Identical jobs (a scratch run another study already has) share one key: they run once."""
    plan: list[PlannedJob] = []
    source = study.source_data and study.input_format.apply(study.source_data)
    for seed in study.seeds:
        target_train = study.train.model_copy(update={"seed": seed + TRANSFER_SEED_OFFSET})
        probes: list[PlannedJob] = []
        for model in study.models:
            depth = len(unit_names(model)) - 1
            # One pretraining per source epoch (the network at epoch e of the full schedule); the
            # last one's features measure the gap and the scores.
            pretrained = {}
            for epoch in study.source_epochs or [study.train.epochs]:
                spec = study.pretraining(seed, model, stop=None if epoch == study.train.epochs else epoch)
                pretrained[epoch] = PlannedJob(spec, {"seed": seed, "depth": depth, "treatment": "baseA", "n": 0,
                                                      **({"source_epoch": epoch} if study.source_epochs else {})})
            plan += pretrained.values()
            base_a = pretrained[max(pretrained)]
            for target, share in ((t, f) for t in study.targets for f in study.class_fractions):
                task = _task(study, target.data, share, seed)
                where = {"seed": seed, "depth": depth, "target": target.name, "class_fraction": share or 1.0}
                if study.probes.gap is not None and source is not None:
                    probes.append(_gap(study, base_a, source, task, where))
                for amount in study.amounts:
                    data = task.model_copy(update={"per_class": amount}) if amount is not None else task
                    labels = {**where, "amount": ALL if amount is None else amount}
                    base_b = PlannedJob(TrainJobSpec(data=data, model=model, train=target_train),
                                        {**labels, "treatment": "baseB", "n": 0})
                    plan.append(base_b)
                    probes += network_probes(study.probes, [base_b], {}, data) + _smoothness(study, [base_b])
                    for epoch, pretrain in pretrained.items():
                        networks = [PlannedJob(TransferJobSpec(data=data, model=model, train=target_train,
                                                               source=pretrain.spec,
                                                               transfer={"n": n, "fine_tune": treatment.endswith("+")}),
                                               {**labels, **{k: v for k, v in pretrain.labels.items()
                                                             if k == "source_epoch"}, "treatment": treatment, "n": n})
                                    for treatment in study.treatments for n in study.n_values(model)]
                        plan += networks
                        probes += [PlannedJob(ChenJobSpec(pretrained=pretrain.key, fine_tuned=job.key,
                                                          units=job.labels["n"]), {**job.labels, "probe": "chen_t"})
                                   for job in networks if study.probes.chen_t and job.labels["treatment"] == "AnB+"
                                   and not isinstance(pretrain.spec, TransferJobSpec)]  # its init is no random one
                        probes += network_probes(study.probes, networks, {"baseA": pretrain.key, "baseB": base_b.key},
                                                 data)
                        probes += _smoothness(study, networks)
                    if study.probes.scores is not None:
                        s = study.probes.scores
                        images = ProbeImages(data=data, split="train", images=s.images, seed=s.seed)
                        probes.append(PlannedJob(ScoresJobSpec(network=base_a.key, images=images, settings=s),
                                                 {**labels, "probe": "scores"}))
        plan += probes
    return plan


def _smoothness(study: CrossDatasetSpec, networks: list[PlannedJob]) -> list[PlannedJob]:
    """The landscape along training of each network of the chosen treatments, by a replay of its run."""
    s, chosen = study.probes.smoothness, study.probes.treatments
    if s is None:
        return []
    return [PlannedJob(SmoothnessJobSpec(network=job.key, run=job.spec, settings=s), {**job.labels, "probe": "smoothness"})
            for job in networks if chosen is None or job.labels["treatment"] in chosen]


def _task(study: CrossDatasetSpec, data: DataSpec, share: float | None, seed: int) -> DataSpec:
    """A target in the study's input format with a seeded share of its classes (all for None)."""
    data = study.input_format.apply(data)
    if share is None:
        return data
    return data.model_copy(update={"classes": data.classes.model_copy(update={"fraction": share, "seed": seed})})


def _gap(study: CrossDatasetSpec, base_a: PlannedJob, source: DataSpec, target: DataSpec,
         labels: dict[str, Any]) -> PlannedJob:
    s = study.probes.gap
    draw = {"split": "test", "images": s.images, "seed": s.seed}
    spec = DomainGapJobSpec(network=base_a.key, source=ProbeImages(data=source, **draw),
                            target=ProbeImages(data=target, **draw), settings=s)
    return PlannedJob(spec, {**labels, "probe": "gap"})


def axes(study: CrossDatasetSpec) -> dict[str, Any]:
    """Study-level values of the explorer's axes: none, as targets, amounts, class shares and depths
    all vary within the study and its jobs carry them as labels."""
    return {}


def legacy_labels(study: CrossDatasetSpec) -> dict[str, Any]:
    """The setting labels of jobs stored before the study kind had class shares and depths."""
    return {"depth": len(unit_names(study.model)) - 1, "class_fraction": 1.0}


def probe_columns(labels: dict[str, Any], scalars: dict[str, float]) -> dict[str, float]:
    """What a probe of one target network adds to that network's row (empty for other jobs)."""
    probe = labels.get("probe")
    if probe == "chen_t":
        return {"chen_t": scalars.get("t_overall"), "theta_r_drawn": bool(scalars.get("theta_r_drawn")),
                **{k: v for k, v in scalars.items() if k.startswith("t.")}}
    if probe == "sharpness":
        return {"top_eigenvalue": scalars["top_eigenvalue"], "trace": scalars["trace"]}
    if probe == "similarity":
        return {f"cka_vs_{labels['against']}": scalars["cka_diagonal_mean"]}
    if probe == "smoothness":
        return {k: scalars[k] for k in ("beta_smoothness_mean", "loss_spread_mean") if k in scalars}
    return {}


def rows(outcomes: list[JobOutcome]) -> pd.DataFrame:
    """One row per target network: its setting (seed, depth, target, class share, amount), treatment,
    n, final accuracy (%), gain over baseB (RI-T) of the same setting, and its probes' summaries
    (Chen's T for AnB+; sharpness and CKA where the study measured them)."""
    networks, probed = [], {}
    for o in outcomes:
        labels = o.job.labels
        key = tuple(labels.get(k) for k in NETWORK)
        if "probe" in labels:
            probed.setdefault(key, {}).update(probe_columns(labels, o.output.scalars))
        elif "target" in labels:
            networks.append({**{k: labels.get(k) for k in NETWORK},
                             "final": 100 * o.output.scalars["final_accuracy"], "job": o.job.key[:16]})
    table = pd.DataFrame(networks)
    if table.empty:
        return table
    keys = list(SETTING)
    base = table[table.treatment == "baseB"].set_index(keys)["final"].rename("baseB")
    table = table.join(base, on=keys)
    table["gain"] = table["final"] - table.pop("baseB")
    extra = pd.DataFrame([probed.get(tuple(r[k] for k in NETWORK), {})
                          for r in table.to_dict("records")], index=table.index)
    table = table.join(extra) if not extra.empty else table
    return table if "chen_t" in table else table.assign(chen_t=None)


def gaps(outcomes: list[JobOutcome]) -> pd.DataFrame:
    """Per seed, depth, target and class share: the measured gap (A-distance, MMD) and the target's
    diversity."""
    found = [{**{k: o.job.labels.get(k) for k in SETTING[:4]}, **o.output.scalars}
             for o in outcomes if o.job.labels.get("probe") == "gap"]
    return pd.DataFrame(found)


DRAWN_THETA_R = ("Chen's T: the pretrained network was imported without its initial weights, so theta_r is a "
                 "fresh initialisation of its architecture (a stand-in for the run's own theta_r)")
SCORES = ("logme", "leep", "nce", "h_score")  # the transferability scores a `scores` job stores


def score_ranking(outcomes: list[JobOutcome], table: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rho and Kendall's tau of each transferability score (mean over seeds) with the gain
    of AnB+ at the deepest n over RI-T, one point per setting (depth, target, class share, amount);
    empty with fewer than 3 points."""
    found = pd.DataFrame([{k: o.job.labels.get(k) for k in SETTING} | o.output.scalars
                          for o in outcomes if o.job.labels.get("probe") == "scores"])
    deepest = table[(table.treatment == "AnB+") & (table.n == table.n.max())]
    if found.empty or deepest.empty:
        return pd.DataFrame()
    keys = [k for k in SETTING[1:] if k in deepest and found[k].notna().any()]
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
    parts = [f"mean over seeds {seeds}; gain = accuracy minus baseB's (RI-T), same seed and setting "
             "(depth, target, class share, amount)"]
    # Rows per target and each setting axis the grid varies (data amount always shown).
    varied = [c for c in ("depth", "class_fraction") if table[c].nunique() > 1]
    index = ["target", *varied, "amount"]
    columns = ["treatment", "n"]
    if table["source_epoch"].notna().any():  # fine-tuned from several pretraining epochs
        table = table.assign(source_epoch=table["source_epoch"].map(lambda e: "" if pd.isna(e) else int(e)))
        columns.append("source_epoch")
    measured = gaps(outcomes)
    if measured.empty and any(o.job.kind == "import" for o in outcomes):
        parts.append("\ndomain gap not measured: the pretrained network's training data is not known to the lab "
                     "(pretrained.data names it)")
    if not measured.empty:
        cols = [c for c in ("a_distance", "mmd2_linear", "mmd2_rbf", "diversity", "classes") if c in measured]
        parts.append("\nmeasured domain gap (pretrained features), per target\n"
                     + measured.groupby(["target", *varied], sort=False)[cols].mean().round(4).to_string())
    for value, what in (("final", "final test accuracy (%)"), ("gain", "gain over RI-T (points)"),
                        ("chen_t", "Chen's T, overall (AnB+)"), ("top_eigenvalue", "Hessian top eigenvalue"),
                        ("cka_vs_baseB", "mean CKA diagonal against RI-T (baseB)")):
        if value in table and table[value].notna().any():
            pivot = table.pivot_table(index=index, columns=columns, values=value,
                                      aggfunc="mean", sort=False)
            parts.append(f"\n{what}\n" + pivot.round(2 if value in ("final", "gain") else 3).to_string(na_rep=""))
    ranking = score_ranking(outcomes, table)
    if not ranking.empty:
        parts.append("\nscores against the measured gain of AnB+ at the deepest n, across settings\n"
                     + ranking.round(3).to_string())
    if "theta_r_drawn" in table and table["theta_r_drawn"].fillna(False).astype(bool).any():
        parts.append(f"\n{DRAWN_THETA_R}")
    layers = [c for c in table if c.startswith("t.")]
    if layers:
        deepest = table[(table.treatment == "AnB+") & (table.n == table.n.max())]
        parts.append(f"\nChen's T per layer (AnB+, n = {int(table.n.max())}), mean over seeds\n"
                     + deepest.groupby(index, sort=False)[layers].mean().round(2).to_string())
    checks = {f"gain_{t}": v for t, v in table[table.treatment != "baseB"].groupby("treatment")["gain"].mean().items()}
    return table, "\n".join(parts), checks

"""The explorer's table: one row per transfer network with every axis it can be plotted against, and
the fitted lines of Chen et al.'s analysis. Pure functions of DataFrames (torch-free)."""

from __future__ import annotations

import pandas as pd

from backend.effective_data import CURVE, fit_summary, images_per_class, scratch_fits, transferred_data
from backend.studies.cross import NETWORK, SETTING

# Axes a network can be compared along. Study-level ones come from the spec (STUDY_KINDS[...].axes);
# the others vary within a cross-data-set study: its job labels and its measurements.
AXES = {
    "n": "units transferred (n)",
    "amount": "training images per class on the target (data amount)",
    "a_distance": "measured domain gap (proxy A-distance, pretrained features)",
    "mmd2_rbf": "measured domain gap (MMD², RBF, pretrained features)",
    "strength": "nominal shift strength of the target",
    "diversity": "target diversity (mean intra-class feature variance)",
    "per_class": "training images per class (data amount)",
    "class_fraction": "share of classes kept (diversity)",
    "domain_gap": "synthetic domain gap",
    "block": "block-shuffle block size (0 = none)",
    "depth": "network depth (transferable units)",
    "source_epoch": "pretraining epoch fine-tuned from (pretraining stage)",
}
INTEGER_AXES = ("n", "amount", "per_class", "block", "depth", "source_epoch")
LOG_AXES = ("amount", "per_class")  # data amounts span decades
METRICS = {"gain": "gain over baseB (points)", "accuracy": "accuracy (%)", "chen_t": "Chen's T, overall",
           "logme": "LogME of the pretrained network on the target", "leep": "LEEP", "nce": "NCE",
           "h_score": "H-score", "l2_to_pretrained": "parameter distance to the pretrained network (L2)",
           "top_eigenvalue": "Hessian top eigenvalue (sharpness)", "trace": "Hessian trace",
           "cka_vs_baseB": "CKA against baseB (RI-T), mean over units",
           "cka_vs_baseA": "CKA against baseA (the source network), mean over units",
           "beta_smoothness_mean": "gradient Lipschitz constant along training, mean (Liu; Santurkar)",
           "loss_spread_mean": "loss spread along the gradient during training, mean",
           "epochs_to_90pct": "epochs to 90% of the run's best accuracy (optimisation speed)",
           "curve_area": "area under the test-accuracy curve (optimisation speed)",
           "best_epoch": "epoch of the best test accuracy",
           "D_T": "images per class the pretraining is worth (D_T, effective data transferred)",
           "D_eff_over_N": "D_eff / N: the factor the pretraining multiplies the target data by"}
# The y axes read off the from-scratch power law (backend.effective_data); they need an amount curve.
EFFECTIVE = ("D_T", "D_eff_over_N")
SCORE_COLUMNS = ("logme", "leep", "nce", "h_score")
GAP_COLUMNS = ("a_distance", "mmd2_rbf", "mmd2_linear", "diversity")


def metrics_of(rows: pd.DataFrame) -> dict[str, str]:
    """The y axes these rows can show: gain and accuracy always; T overall and per layer, and the
    transferability scores, where a cross-data-set study measured them."""
    found = {m: label for m, label in METRICS.items() if m in ("gain", "accuracy") or
             (m in rows and rows[m].notna().any()) or (m in EFFECTIVE and has_amount_curve(rows))}
    per_layer = {c: f"Chen's T of {c[2:]}" if c.startswith("t.") else f"weight deviation of {c[10:]} (Liu)"
                 for c in rows if c.startswith(("t.", "deviation.")) and rows[c].notna().any()}
    return found | per_layer


def with_measurements(networks: pd.DataFrame, gaps: pd.DataFrame, chen: pd.DataFrame,
                      strengths: dict[str, float | None], scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """A cross-data-set study's networks with their target's measured gap and diversity (same seed,
    depth, target and class share), their Chen's T (AnB+ networks), the pretrained network's scores
    on their target and the target's nominal strength. A data amount of "all" becomes the mean training
    images per class the network had (runs stored before that scalar existed stay off the amount axis)."""
    rows = networks
    if "target" not in rows:
        return rows
    if not gaps.empty:
        keys = [k for k in SETTING[:4] if k in rows]
        rows = rows.merge(gaps[keys + [c for c in GAP_COLUMNS if c in gaps]], on=keys, how="left")
    if not chen.empty and "t_overall" in chen:
        keys = [k for k in NETWORK if k in rows and k in chen]
        layers = [c for c in chen if c.startswith(("t.", "deviation.")) or c == "l2_to_pretrained"]
        rows = rows.merge(chen[keys + ["t_overall", *layers]].rename(columns={"t_overall": "chen_t"}),
                          on=keys, how="left")
    if scores is not None and not scores.empty:  # the pretrained network's scores on the same setting
        keys = [k for k in SETTING if k in rows]
        rows = rows.merge(scores[keys + [c for c in SCORE_COLUMNS if c in scores]], on=keys, how="left")
    rows["strength"] = rows["target"].map(strengths)
    if "amount" in rows:  # "all": the mean training images per class the network had
        every = rows["train_images"] / rows["classes"] if {"train_images", "classes"} <= set(rows) else None
        rows["amount"] = pd.to_numeric(rows["amount"], errors="coerce").fillna(every)
    return rows


def with_labels(frame: pd.DataFrame, defaults: dict[str, object]) -> pd.DataFrame:
    """Jobs with the labels they lack filled in: those of jobs stored before their study kind had them."""
    return frame.assign(**{k: frame[k].fillna(v) if k in frame else v for k, v in defaults.items()})


# What each network probe adds to its network's row.
PROBE_COLUMNS = {"sharpness": ("top_eigenvalue", "trace"), "smoothness": ("beta_smoothness_mean", "loss_spread_mean")}


def with_probes(rows: pd.DataFrame, probes: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Networks with their probes' summaries (probe kind -> its jobs): the Hessian top eigenvalue and
    trace, the landscape's smoothness along training, and the mean CKA diagonal against each base
    network. A probe's job carries its network's labels; `rows` must have the same setting labels
    (legacy ones filled) and amounts as stored, before they become numbers."""
    keys = [k for k in NETWORK if k in rows]
    for kind, frame in probes.items():
        on = [k for k in keys if k in frame]
        # CKA against a base network; a basins study's CKA is between pairs of runs (the Landscape page's)
        if kind == "similarity" and {"cka_diagonal_mean", "against"} <= set(frame):
            wide = frame.pivot_table(index=on, columns="against", values="cka_diagonal_mean", dropna=False)
            rows = rows.merge(wide.add_prefix("cka_vs_").reset_index(), on=on, how="left")
        elif not frame.empty and set(PROBE_COLUMNS.get(kind, ())) & set(frame):
            rows = rows.merge(frame[on + [c for c in PROBE_COLUMNS[kind] if c in frame]], on=on, how="left")
    return rows


def scratch_curves(rows: pd.DataFrame) -> list[pd.DataFrame]:
    """Each study's rows whose from-scratch networks (baseB) span 3 or more data amounts: the fewest
    a power law err(N) = a + b N^-c can be fitted to."""
    if not {"amount", "treatment", "target"} <= set(rows):
        return []
    parts = rows.groupby("study", sort=False) if "study" in rows else [(None, rows)]
    return [part for _, part in parts
            if images_per_class(part[part.treatment == "baseB"]).nunique() >= 3]


def has_amount_curve(rows: pd.DataFrame) -> bool:
    return bool(scratch_curves(rows))


def with_effective_data(rows: pd.DataFrame, score: str) -> pd.DataFrame:
    """Rows with each pretrained network's D_T, D_eff / N and, where those are missing, the reason
    (`transfer_reason`), from its study's from-scratch curves fitted per seed; `rows` uniquely indexed."""
    found = [transferred_data(part, score)[["D_T", "ratio", "reason"]] for part in scratch_curves(rows)]
    columns = {"ratio": "D_eff_over_N", "reason": "transfer_reason"}
    if not found:
        return rows.assign(D_T=float("nan"), D_eff_over_N=float("nan"), transfer_reason="")
    return rows.join(pd.concat(found).rename(columns=columns)).fillna({"transfer_reason": ""})


def refusals(rows: pd.DataFrame) -> str:
    """What a caption says of the pretrained networks given no D_T: how many of them, and why."""
    networks = rows[~rows.treatment.isin(["baseA", "baseB"])]
    reasons = networks.get("transfer_reason", pd.Series(dtype=str)).replace("", pd.NA).dropna()
    if reasons.empty:
        return ""
    why = "; ".join(f"{count} {reason}" for reason, count in reasons.value_counts().items())
    return f"{len(reasons)} of {len(networks)} pretrained networks have no D_T: {why}."


def uncensored(rows: pd.DataFrame, groups: list[str], y: str) -> pd.DataFrame:
    """`rows` without the points (rows sharing `groups`) where some network has no `y`: the networks
    refused a D_T are those whose pretraining is worth the most, so the others' mean would be biased."""
    complete = rows[y].notna().groupby([rows[g] for g in groups], dropna=False).transform("all")
    return rows[complete]


def scratch_fit_table(rows: pd.DataFrame, score: str) -> pd.DataFrame:
    """Per study and setting: the from-scratch power law's a, b, c, mean and 95% interval over seeds."""
    tables = []
    for part in scratch_curves(rows):
        keys = [k for k in CURVE if k in part]
        table = fit_summary(scratch_fits(part, score), keys)
        tables.append(table.assign(study=part["study"].iloc[0]) if "study" in part else table)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def varying_axes(rows: pd.DataFrame) -> list[str]:
    """The axes along which the rows take more than one value: the only ones worth plotting."""
    return [a for a in AXES if a in rows and rows[a].dropna().nunique() > 1]

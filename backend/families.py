"""The findings of each preset family: what its study measured beside what its paper reported, one
function per family, each a list of backend.verdicts Findings (a paired interval against a stated
margin) from the study's stored scores. backend.findings assembles them into the report.

Torch-free. The only text typed in here is the papers' (backend.papers) and the margins below, each in
its finding's own units, chosen before looking at the data.
"""

from __future__ import annotations

import pandas as pd

from backend.papers import PAPER
from backend.quantities import NONE, anb_drop_at, anb_plus_gain_by_n, deepest, probe_rows, pt_rit, yosinski_score
from backend.effective_data import effective_data_finding_table
from backend.specs.selection import RANK_SCORES
from backend.stats import fit_line, rank_agreement
from backend.studies.cross import SETTING
from backend.verdicts import (
    Finding, judge, log_ratio, markdown_table, seed_cells, stat, table, versus,
)
from db.studies import StudyListing

# Practical margins, in each finding's own units: a difference inside +/- margin is no effect.
POINTS = 0.5  # accuracy points: below seed-to-seed noise of the small presets' networks
STAGE_TOLERANCE = 1.0  # accuracy points: an early checkpoint this close to the last does "about as well"
RELATIVE = 0.1  # log ratio: a curvature or T within about 10% is the same
MARGIN = {"barrier": 0.05, "cka": 0.02, "l2": 1.0, "mistakes": 0.02, "criticality": 0.02, "deviation": 0.01,
          "curve_area": 0.01, "slope": 0.05, "tau": 0.1}
CURVATURE = {"top_eigenvalue": "Hessian top eigenvalue", "trace": "Hessian trace",
             "loss_spread_mean": "loss spread along the gradient (mean along training)",
             "beta_smoothness_mean": "gradient change beta (mean along training)",
             "gradient_sv": "gradient top singular value (mean over units and along training)"}


# ---------------------------------------------------------------- one function per preset family

def yosinski(scores: pd.DataFrame, spec: dict, layers: list[str]) -> list[Finding]:
    column, what = yosinski_score(spec)
    nets = probe_rows(scores, None).assign(score=lambda t: 100 * t[column])
    shape = markdown_table(seed_cells(nets[nets.treatment != "baseA"], ["n"], "treatment", "score"))
    out = [table("Accuracy per treatment and n", f"{what}, mean ± 95% t interval over seeds; baseB at n = 0:\n\n"
                 f"{shape}", PAPER["shape"], "layers")]
    drop, lo, hi = anb_drop_at(scores, spec)
    if lo:
        out.append(judge(f"AnB drop from n = {lo} to n = {hi}", f"{what}: AnB at n = {lo} and n = {hi}.",
                         PAPER["anb_drop"], f"AnB(n={lo}) - AnB(n={hi})", drop, "greater", 2 * POINTS, "points",
                         quantity="anb_drop", page="layers"))
    over = anb_plus_gain_by_n(scores, spec)
    if not over.empty:
        by_n = over.rename("gain").reset_index().assign(kind="AnB+ - baseB")
        out.append(judge("AnB+ against baseB", "AnB+ minus baseB of the same seed per n (points), mean ± 95% t "
                         "interval over seeds:\n\n" + markdown_table(seed_cells(by_n, ["n"], "kind", "gain")),
                         PAPER["anb_plus"], "AnB+ - baseB (mean over n)", over.groupby(level="seed").mean(),
                         "greater", POINTS, "points", quantity="anb_plus_gain", page="layers"))
    return out


def dissimilar_vs_similar(studies: list[tuple[StudyListing, dict, pd.DataFrame]]) -> list[Finding]:
    """Each dissimilar split (class groups set) against its similar study (`similar_study`)."""
    out = []
    for listing, spec, scores in studies:
        match = similar_study(spec, studies)
        if match is None:
            continue
        other, other_spec, other_scores = match
        (d, dlo, dhi), (s, slo, shi) = anb_drop_at(scores, spec), anb_drop_at(other_scores, other_spec)
        if d.empty or s.empty:
            continue
        # Per unit transferred, so studies with different n grids compare; seeds are paired by number
        # (the same initialisation and batch-order seed, a different class split).
        out.append(versus(f"Study {listing.id} (dissimilar) vs study {other.id} (similar): AnB drop",
                          PAPER["dissimilar"], "AnB drop per unit (points)",
                          (f"dissimilar (study {listing.id})", d / (dhi - dlo)),
                          (f"similar (study {other.id})", s / (shi - slo)), "greater", POINTS / 2, "points", 2,
                          page="compare"))
    return out


def similar_study(spec: dict, studies: list[tuple[StudyListing, dict, pd.DataFrame]]):
    """The study a dissimilar split (`spec` with class groups) is compared with: the latest one without
    groups on the same data (source, images per class, every data field), preferring one that trained the
    same network the same way; None for a study without groups or without such a partner. A split
    compared with a study on another data amount would measure the amount, not the split."""
    if not spec.get("groups"):
        return None
    similar = [study for study in studies if not study[1].get("groups") and study[1].get("data") == spec.get("data")]
    return max(similar, default=None, key=lambda study: (
        study[1].get("model") == spec.get("model"), study[1].get("train") == spec.get("train"), study[0].id))


def block_shuffle(scores: pd.DataFrame, spec: dict, layers: list[str]) -> list[Finding]:
    # Each target's block size from its shifts; the plain image (no block shuffle) ranks as the largest.
    blocks = {t["name"]: next((s["block"] for s in t["data"].get("shifts") or [] if s["kind"] == "block_shuffle"),
                              float("inf")) for t in spec.get("targets", [])}
    nets = probe_rows(scores, None)
    pairs = {"accuracy gain (points)": 100 * pt_rit(nets, "final_accuracy"),
             "curve area gain": pt_rit(nets, "curve_area"), "epochs to 90% saved": -pt_rit(nets, "epochs_to_90pct")}
    gains = pd.concat({k: p["P-T"] - p["RI-T"] for k, p in pairs.items()}, axis=1).reset_index()
    if gains.empty:
        return []
    order = sorted(gains.target.unique(), key=lambda t: blocks.get(t, float("inf")))
    rows = gains.groupby(["target", "seed"]).mean().groupby(level="target").agg(list).loc[order]
    rows["block"] = [f"{blocks[t]}" if blocks.get(t, float("inf")) < float("inf") else "none" for t in order]
    measured = ("P-T (AnB+) minus RI-T (baseB) of the same seed, from the smallest block to the plain image, mean ± "
                "95% t interval over seeds:\n\n" + markdown_table(rows, 3))
    small, plain = order[0], order[-1]
    acc = gains.pivot_table(index="seed", columns="target", values="accuracy gain (points)")
    area = gains[gains.target == small].groupby("seed")["curve area gain"].mean()
    # Erasing a gain needs one: where P-T's gain on the plain image is not established, the claim tests nothing.
    plain_gain = judge("", "", "", "", acc[plain], "greater", POINTS).verdict
    moot = "" if plain_gain == "agrees" else (f"P-T's accuracy gain on '{plain}' is not established (gain "
                                              f"{stat(acc[plain], 3)} points), so there is no gain to erase")
    return [judge("Accuracy gain with small blocks", measured, PAPER["block_accuracy"],
                  f"gain('{small}') - gain('{plain}')", acc[small] - acc[plain], "less", POINTS, "points", 3,
                  quantity=None, page="explorer", moot=moot),
            judge("Speed gain with small blocks", f"Curve area (mean test accuracy over training) of P-T minus RI-T "
                  f"on '{small}'.", PAPER["block_speed"], f"P-T - RI-T curve area on '{small}'", area, "greater",
                  MARGIN["curve_area"], "", 3, page="explorer")]


def basins(scores: pd.DataFrame, spec: dict, layers: list[str]) -> list[Finding]:
    pairs, out = probe_rows(scores, "interpolation", "similarity"), []
    for column, what, key, claim in (("barrier", "loss barrier", "barrier", "less"),
                                      ("cka_diagonal_mean", "CKA", "cka", "greater"),
                                      ("l2_distance", "l2 distance", "l2", "less"),
                                      ("mistakes.mistake_jaccard", "mistake overlap (Jaccard)", "mistakes", "greater")):
        if column in pairs:
            per = pairs.groupby(["pair", "seed"])[column].mean()
            cells = markdown_table(seed_cells(pairs, ["pair"], "seed", column), 4)
            out.append(versus(f"{what}: P-T pairs vs RI-T pairs", PAPER[key], what, ("P-T", per.get("P-T", NONE)),
                              ("RI-T", per.get("RI-T", NONE)), claim, MARGIN[key], "", 4,
                              f"Per pair kind (mean over pairs and targets) and seed:\n\n{cells}",
                              quantity=f"{key}_gap", page="landscape"))
    critical = probe_rows(scores, "criticality")
    units = [c for c in critical if c.startswith("rewind.")]
    if units:
        critical = critical.assign(kind=critical.treatment.map({"AnB+": "P-T", "baseB": "RI-T"}),
                                   rewind=critical[units].mean(axis=1))
        per = critical.groupby(["kind", "seed"])["rewind"].mean()
        long = critical.rename(columns=lambda c: c.removeprefix("rewind.")).melt(
            ["kind", "seed"], [u.removeprefix("rewind.") for u in units], var_name="unit", value_name="a")
        out.append(versus("Module criticality: P-T vs RI-T", PAPER["criticality"], "mean rewind tolerance",
                          ("P-T", per.get("P-T", NONE)), ("RI-T", per.get("RI-T", NONE)), "less",
                          MARGIN["criticality"], "", 3,
                          "Rewind tolerance per unit (the smallest a keeping the error within epsilon; lower = less "
                          "critical), mean ± 95% t interval over seeds:\n\n"
                          + markdown_table(seed_cells(long, ["unit"], "kind", "a"), 3), page="landscape"))
    return out


def pretraining_stage(scores: pd.DataFrame, spec: dict, layers: list[str]) -> list[Finding]:
    nets = probe_rows(scores, None).assign(score=lambda t: 100 * t["final_accuracy"])
    if "source_epoch" not in nets:
        return []
    keys = [k for k in SETTING if k in nets]
    plus = nets[(nets.treatment == "AnB+") & nets.source_epoch.notna()]
    # setting x source epoch -> score, only the settings (seed, target, amount, ...) every epoch has
    # finished: each difference is taken within one setting, then averaged per seed.
    wide = plus[plus.n == plus.n.max()].groupby([*keys, "source_epoch"], dropna=False)["score"].mean().unstack()
    wide = wide.dropna()
    if wide.empty:
        return []
    # baseB in each setting the comparison keeps
    base = nets[nets.treatment == "baseB"].groupby(keys, dropna=False)["score"].mean().reindex(wide.index)
    epochs = sorted(int(e) for e in wide.columns)
    last = epochs[-1]

    def per_seed(values: pd.Series) -> pd.Series:
        return values.dropna().groupby(level="seed").mean()

    minus_last = {e: per_seed(wide[e] - wide[last]) for e in epochs}
    rows = pd.DataFrame({"AnB+ (%)": [per_seed(wide[e]).tolist() for e in epochs],
                         "minus baseB": [per_seed(wide[e] - base).tolist() for e in epochs],
                         "minus the last": [minus_last[e].tolist() for e in epochs]}, pd.Index(epochs, name="epoch"))
    measured = (f"Final accuracy of AnB+ fine-tuned from each pretraining epoch, minus baseB's (RI-T: "
                f"{stat(per_seed(base))}) and the last checkpoint's (epoch {last}) in the same "
                "setting, points, mean ± 95% t interval over seeds (each seed the mean over the targets and amounts "
                "every epoch has finished):\n\n" + markdown_table(rows))
    # "About as well as": equivalent within a stated tolerance (TOST). The checkpoint tested is fixed
    # in advance, the latest at or before half the pretraining, so no checkpoint is picked for its luck.
    early = [e for e in epochs if e <= last / 2]
    if not early:
        return [table("Early checkpoint vs the last", measured, PAPER["stage"], "explorer")]
    e = early[-1]
    return [judge("Early checkpoint vs the last", measured, PAPER["stage"], f"AnB+(epoch {e}) - AnB+(epoch {last})",
                  minus_last[e], "equivalent", STAGE_TOLERANCE, "points", page="explorer")]


def flatness(scores: pd.DataFrame, spec: dict, layers: list[str]) -> list[Finding]:
    # Dissimilarity: the targets' nominal strengths where all have one, else their order in the spec.
    targets = spec.get("targets", [])
    strength = {t["name"]: t["strength"] if all(u.get("strength") is not None for u in targets) else i
                for i, t in enumerate(targets)}

    def by_strength(frame: pd.DataFrame) -> pd.DataFrame:  # indexed by target: the most similar first
        return frame.loc[sorted(frame.index, key=lambda t: strength.get(t, 0))]

    out, sharp, smooth = [], probe_rows(scores, "sharpness"), probe_rows(scores, "smoothness")
    units = [c for c in smooth if c.startswith("gradient_sv_mean.")]
    smooth = smooth.assign(gradient_sv=smooth[units].mean(axis=1)) if units else smooth
    for rows, column, key, digits in ((sharp, "top_eigenvalue", "sharpness", 3), (sharp, "trace", "sharpness", 2),
                                      (smooth, "loss_spread_mean", "smoothness", 4),
                                      (smooth, "beta_smoothness_mean", "smoothness", 3),
                                      (smooth, "gradient_sv", "gradient_sv", 3)):
        pairs = pt_rit(rows, column)
        if pairs.empty:
            continue
        # Scale-free: log(P-T / RI-T) per seed and target, then the mean over targets per seed; the
        # table gives each target's own paired interval, so a target that goes the other way shows.
        ratio = log_ratio(pairs["P-T"], pairs["RI-T"]).rename("log(P-T / RI-T)")
        long = pd.concat([pairs.reset_index().melt(["seed", "target"], var_name="kind", value_name=column),
                          ratio.reset_index().rename(columns={"log(P-T / RI-T)": column}).assign(kind="log ratio")])
        out.append(judge(f"{CURVATURE[column]}: P-T vs RI-T", "P-T (AnB+) and RI-T (baseB) per target, from the most "
                         "similar to the least, and the paired log ratio, mean ± 95% t interval over seeds:\n\n"
                         + markdown_table(by_strength(seed_cells(long, ["target"], "kind", column)), digits),
                         PAPER[key], "log(P-T / RI-T) (mean over targets)", ratio.groupby(level="seed").mean(),
                         "less", RELATIVE, "", 3, page="landscape"))
    chen = deepest(probe_rows(scores, "chen_t"))
    cols = [c for c in chen if c.startswith("deviation.")]
    if cols and chen.target.nunique() >= 2:
        chen = chen.assign(deviation=chen[cols].mean(axis=1))
        long = chen.melt(["target", "seed"], cols, var_name="layer", value_name="value")
        cells = by_strength(seed_cells(long, ["target"], "layer", "value"))
        cells = cells.assign(strength=[strength.get(t, 0) for t in cells.index])
        per = chen.groupby(["target", "seed"])["deviation"].mean()
        first, last = cells.index[0], cells.index[-1]
        out.append(versus("Weight deviation on similar vs dissimilar targets", PAPER["deviation"],
                          "mean deviation", (f"'{first}'", per.get(first, NONE)), (f"'{last}'", per.get(last, NONE)),
                          "less", MARGIN["deviation"], "", 4, "Deviation per layer (AnB+ from the pretrained weights), "
                          "from the most similar target to the least (strength), mean ± 95% t interval over seeds:\n\n"
                          + markdown_table(cells, 4), page="landscape"))
    return out


def chen_t(scores: pd.DataFrame, spec: dict, layers: list[str]) -> list[Finding]:
    chen = deepest(probe_rows(scores, "chen_t"))
    names = [name for name in layers if f"t.{name}" in chen]
    if not names:
        return []
    long = chen.rename(columns=lambda c: c.removeprefix("t.")).melt(["seed"], names, var_name="layer", value_name="T")
    per_layer = long.groupby(["seed", "layer"])["T"].mean().unstack()[names]
    top = per_layer.idxmax(axis=1)
    cells = seed_cells(long.assign(kind="T"), ["layer"], "kind", "T").loc[names]
    # The first layer against the most transferable of the others, as a log ratio per seed.
    out = [judge("Chen's T per layer", "T per layer (AnB+ at the deepest n), mean ± 95% t interval over seeds (each "
                 "seed the mean over targets and settings):\n\n" + markdown_table(cells)
                 + f"\n\nLargest T per seed: {', '.join(top)}.", PAPER["t_layers"],
                 f"log(T({names[0]}) / the largest T of the other layers)",
                 log_ratio(per_layer[names[0]], per_layer[names[1:]].max(axis=1)), "less", RELATIVE, "", 3,
                 page="explorer")] if len(names) > 1 else []
    # Data amount N: the fine-tuned network's training images, so that "all" has a number too.
    keys = [k for k in SETTING if k in chen] + ["treatment", "n"]
    points = chen.drop(columns="train_images", errors="ignore").merge(probe_rows(scores, None)[[*keys, "train_images"]],
                                                                      on=keys)
    if points.get("amount", NONE).nunique() >= 2:
        out.append(_fit("Chen's T against data amount", "log T against log N (training images)", PAPER["t_amount"],
                        points, "train_images", "t_overall", MARGIN["slope"], log=True))
    gaps = probe_rows(scores, "gap")
    if "a_distance" in gaps and gaps.target.nunique() >= 2:
        keys = [k for k in SETTING[:4] if k in gaps]
        points = gaps[[*keys, "a_distance"]].merge(chen.groupby(keys, as_index=False)["t_overall"].mean(), on=keys)
        out.append(_fit("Chen's T against the measured gap", "T against the proxy A-distance", PAPER["t_gap"],
                        points, "a_distance", "t_overall", 2 * MARGIN["slope"]))
    return out


def _fit(title: str, what: str, paper: str, points: pd.DataFrame, x: str, y: str, margin: float,
         log: bool = False) -> Finding:
    """One least-squares slope per seed (over its targets and settings), judged as a paired quantity."""
    fits = {seed: fit_line(part, x, y, log_x=log, log_y=log) for seed, part in points.groupby("seed")}
    slopes = pd.Series({seed: f["slope"] for seed, f in fits.items() if f["slope"] is not None}, dtype=float)
    pooled = fit_line(points, x, y, log_x=log, log_y=log)
    r2 = "" if pooled["r2"] is None else f"; pooled over seeds {pooled['slope']:.3f} (R^2 {pooled['r2']:.2f})"
    return judge(title, f"Least-squares slope of {what}, one fit per seed over its targets and settings "
                 f"({len(points)} points{r2}).", paper, f"slope of {what}", slopes, "less", margin, "", 3,
                 page="explorer")


def effective_data(scores: pd.DataFrame, spec: dict, layers: list[str]) -> list[Finding]:
    """Hernandez et al.'s effective data transferred, per amount (a table; no paper number to judge)."""
    nets = probe_rows(scores, None)
    if nets.get("amount", NONE).nunique() < 3:
        return []
    summary = effective_data_finding_table(nets)
    if summary.empty:
        return []
    keys = [c for c in summary.columns if c not in ("D_T_ci95", "ratio_ci95", "refused", "reasons", "D_T", "ratio",
                                                     "seeds")]
    shown = summary.assign(**{"D_T (images/class)": [f"{m:.1f} ± {h:.1f}" if pd.notna(m) else "—" for m, h in
                                                     zip(summary.D_T, summary.D_T_ci95)],
                              "D_eff / N": [f"{m:.2f} ± {h:.2f}" if pd.notna(m) else "—" for m, h in
                                            zip(summary.ratio, summary.ratio_ci95)]})
    columns = [*keys, "D_T (images/class)", "D_eff / N", "seeds", "refused", "reasons"]
    return [table("Effective data transferred", "Images per class of training from scratch that the pretraining is "
                  "worth (Hernandez et al. 2021): the from-scratch error fitted per seed as a + b N^-c, each pretrained "
                  "network's error inverted through it; D_T = D_eff - N, mean ± 95% t interval over seeds. No number "
                  "where the fit fails or D_eff lies beyond 3x the largest amount measured in any seed (the reasons "
                  "are given: a mean over the other seeds would be biased):\n\n"
                  + markdown_table(shown[columns].set_index(keys)), PAPER["effective_data"], "explorer")]


def model_selection(scores: pd.DataFrame, spec: dict, layers: list[str]) -> list[Finding]:
    """You et al. 2021: do the scores rank the candidate sources as fine-tuning does? Per data amount and
    seed, each score's weighted Kendall's tau with that seed's fine-tuned accuracies (the scores are the
    seed's too: they read no training); LogME's is judged against a margin, every score's tabled."""
    tuned = scores[(scores.get("treatment") == "AnB+") & scores.get("final_accuracy", NONE).notna()]
    scored = probe_rows(scores, "scores")
    if tuned.empty or scored.empty or not {"candidate", "amount"} <= set(tuned):
        return []
    out = []
    for amount, at in tuned.groupby("amount", sort=False):
        per_candidate = scored[scored.amount == amount].set_index("candidate")
        taus = []
        for seed, runs in at.groupby("seed"):
            accuracy = runs.set_index("candidate").final_accuracy
            names = [c for c in accuracy.index if c in per_candidate.index]
            if len(names) >= 2:
                taus += [{"score": score, "seed": seed, "tau": rank_agreement(
                    per_candidate.loc[names, score], accuracy[names])["weighted_tau"]} for score in RANK_SCORES]
        if not taus:
            continue
        taus = pd.DataFrame(taus)
        amount = int(amount) if isinstance(amount, float) else amount  # a label column with gaps reads as float
        where = f"at {amount} training images per class" if amount != "all" else "on all training images"
        out.append(table(f"Rank agreement {where}", "Weighted Kendall's tau of each score with each seed's "
                         "fine-tuned accuracies over the candidates, mean ± 95% t interval over seeds (NaN: a score "
                         "equal for every candidate orders nothing):\n\n"
                         + markdown_table(seed_cells(taus.assign(of="weighted tau"), ["score"], "of", "tau"), 3),
                         PAPER["selection"], "selection"))
        logme = taus[taus.score == "logme"].set_index("seed").tau
        out.append(judge(f"LogME ranks the candidates {where}", f"{len(per_candidate)} candidates.",
                         PAPER["selection"], "weighted tau(LogME, accuracy)", logme, "greater", MARGIN["tau"],
                         digits=3, page="selection"))
    return out

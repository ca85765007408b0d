"""Findings: a Markdown report, generated from the store, of what each preset study measured beside
what its paper reported, with one sentence per finding saying whether they agree, by a stated rule.

    python -m backend findings --out docs/findings.md [--database URL]

Torch-free: it reads the store through db.results and db.studies only, so it runs on the web tier.
Every number comes from a succeeded job; the only text typed in here is the papers' (PAPERS.md).
Most rules ask for an inequality "in every seed", so one lucky seed cannot carry a verdict.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import make_url

from backend.stats import fit_line
from backend.studies.cross import SETTING
from backend.verdicts import (
    Finding,
    finding,
    markdown_section,
    markdown_table,
    seed_cells,
    stat,
    versus,
)
from db.results import Results
from db.session import get_engine
from db.studies import Studies, StudyListing

# What each paper reported (shared/PAPERS.md), set beside each measurement.
_Y, _N, _L, _C = "Yosinski et al. 2014", "Neyshabur et al. 2020", "Liu et al. 2019", "Chen et al. 2022"
PAPER = {
    "shape": f"{_Y} (top-1 %, n = 1..7): baseB 62.5; BnB 62.7, 62.4, 62.1, 60.5, 59.4, 61.9, 62.3; "
             "AnB 62.8, 62.4, 61.9, 60.0, 57.8, 58.1, 54.3; AnB+ 63.7, 63.6, 64.3, 64.0, 64.5, 64.6, 64.7; "
             "random at chance from n = 3.",
    "anb_drop": f"{_Y}: AnB falls from 62.8% at n = 1 to 54.3% at n = 7, 8.5 points (the upper layers are specific).",
    "anb_plus": f"{_Y}: AnB+ lies above baseB (62.5%) at every n, by about +1.7 points.",
    "dissimilar": f"{_Y}: between dissimilar halves (natural vs man-made) the AnB drop grows faster.",
    "block_accuracy": f"{_N}: small blocks remove most of P-T's advantage in final accuracy.",
    "block_speed": f"{_N}: with small blocks P-T still trains faster than RI-T.",
    "barrier": f"{_N}: no loss barrier between P-T runs (one basin); a barrier between RI-T runs.",
    "cka": f"{_N}: P-T pairs are far more similar in features (CKA) than RI-T pairs.",
    "l2": f"{_N}: P-T models are close to each other in parameter (l2) distance.",
    "mistakes": f"{_N}: P-T runs share more of their mistakes than RI-T runs (not in PAPERS.md's summary).",
    "criticality": f"{_N} (Chatterji et al.'s criticality): P-T models are more robust to rewinding a module; "
                   "deeper modules are more critical.",
    "stage": f"{_N}: an early checkpoint at the end of a plateau does about as well as the final one; {_L}: "
             "transferability first rises, then falls over pretraining.",
    "sharpness": f"{_L}: pretrained-then-fine-tuned minima are flatter (smaller Hessian top eigenvalue and trace).",
    "smoothness": f"{_L}: training from a pretrained start is smoother (a smaller loss spread and gradient change, "
                  "beta, along the gradient; Santurkar et al.'s measures).",
    "gradient_sv": f"{_L}: the principal component of the gradient (its top singular value) is suppressed in "
                   "pretrained parameters.",
    "deviation": f"{_L}: the weight deviation ||W - W0||_F / ||W0||_F stays small when the target is similar.",
    "t_layers": f"{_C}: the first conv is usually NOT the most transferable layer (overall T e.g. CIFAR-10 7.8, "
                "CIFAR-100 5.6, Caltech-101 23.9, Flowers 106).",
    "t_amount": f"{_C}: T falls as the target's data amount grows, log T about -0.6 log N.",
    "t_gap": f"{_C}: T falls with the domain gap (and the dataset diversity).",
}
NONE = pd.Series(dtype=float)  # no seed measured it
STAGE_TOLERANCE = 1.0  # accuracy points: an early checkpoint this close to the last does "about as well"
CURVATURE = {"top_eigenvalue": "Hessian top eigenvalue", "trace": "Hessian trace",
             "loss_spread_mean": "loss spread along the gradient (mean along training)",
             "beta_smoothness_mean": "gradient change beta (mean along training)",
             "gradient_sv": "gradient top singular value (mean over units and along training)"}


def _probe(scores: pd.DataFrame, *probes: str | None) -> pd.DataFrame:
    """The rows of the given probes; None: the networks themselves (no probe label)."""
    if "probe" not in scores:
        return scores if None in probes else scores.iloc[:0]
    mask = scores["probe"].isin([p for p in probes if p is not None])
    return scores[mask | scores["probe"].isna()] if None in probes else scores[mask]


def _pt_rit(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per seed and target: `column` of P-T (AnB+ at the deepest n, from the last source epoch) and of
    RI-T (baseB) in the same setting, averaged over the other setting labels (amount, depth, share)."""
    if column not in rows or "target" not in rows:  # not measured, or no target network finished yet
        return pd.DataFrame(columns=["P-T", "RI-T"])
    pt, rit = _deepest(rows[rows.treatment == "AnB+"]), rows[rows.treatment == "baseB"]
    both = pt.merge(rit, on=[k for k in SETTING if k in rows], suffixes=("", "_rit"))
    return both.groupby(["seed", "target"])[[column, f"{column}_rit"]].mean().set_axis(["P-T", "RI-T"], axis=1)


def _deepest(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows at the deepest n (every layer transferred), from the last source epoch where there are several."""
    rows = rows[rows.n == rows.n.max()]
    return rows[rows.source_epoch == rows.source_epoch.max()] if rows.get("source_epoch", NONE).notna().any() else rows


# ---------------------------------------------------------------- one function per preset family

def _yosinski_score(spec: dict) -> tuple[str, str]:
    """The score column and its description. The paper's, the mean of the 10 best evaluations, where a
    network is evaluated at least 20 times (once an epoch); over fewer it would average the climb to
    the plateau, a speed measure, so there the final accuracy (the cosine schedule ends at lr 0)."""
    epochs = spec.get("train", {}).get("epochs", 10)
    if epochs >= 20:
        return "best10_accuracy", "Mean of the 10 best test evaluations (%)"
    return "final_accuracy", (f"Final test accuracy (%): with {epochs} evaluations (one an epoch) the paper's mean of "
                              "the 10 best would average the climb to the plateau")


def _anb_drop(scores: pd.DataFrame, spec: dict) -> tuple[pd.Series, int, int]:
    """Per seed: AnB's score (%) at the smallest n minus at the deepest n; and those n."""
    anb = _probe(scores, None)
    anb = anb[anb.treatment == "AnB"]
    if anb.n.nunique() < 2:
        return pd.Series(dtype=float), 0, 0
    lo, hi = int(anb.n.min()), int(anb.n.max())
    at = anb.groupby(["n", "seed"])[_yosinski_score(spec)[0]].mean().mul(100)
    return (at.loc[lo] - at.loc[hi]).dropna(), lo, hi


def yosinski(scores: pd.DataFrame, spec: dict, layers: list[str]) -> list[Finding]:
    column, what = _yosinski_score(spec)
    nets = _probe(scores, None).assign(score=lambda t: 100 * t[column])
    table = markdown_table(seed_cells(nets[nets.treatment != "baseA"], ["n"], "treatment", "score"))
    out = [Finding("Accuracy per treatment and n", f"{what}, mean ± 95% CI over seeds; baseB at n = 0:\n\n{table}",
                   PAPER["shape"], "", None, "")]
    drop, lo, hi = _anb_drop(scores, spec)
    if lo:
        out.append(finding(f"AnB drop from n = {lo} to n = {hi}", f"AnB at n = {lo} minus at n = {hi} (points): "
                           + stat(drop), PAPER["anb_drop"], f"AnB at n = {hi} < AnB at n = {lo}", drop > 0))
    base = nets[nets.treatment == "baseB"].groupby("seed")["score"].mean()
    over = nets[nets.treatment == "AnB+"].groupby(["seed", "n"])["score"].mean().sub(base, level="seed")
    if not over.empty:
        out.append(finding("AnB+ against baseB", "AnB+ minus baseB, mean over n (points): "
                           + stat(over.groupby(level="seed").mean()), PAPER["anb_plus"],
                           "AnB+ > baseB at every n", (over > 0).groupby(level="seed").all()))
    return out


def dissimilar_vs_similar(studies: list[tuple[StudyListing, dict, pd.DataFrame]]) -> list[Finding]:
    """Each dissimilar split (class groups set) against the latest similar study on the same data source."""
    out = []
    for listing, spec, scores in studies:
        similar = [(s, sp, sc) for s, sp, sc in studies if spec.get("groups") and not sp.get("groups")
                   and sp.get("data", {}).get("source") == spec.get("data", {}).get("source")]
        if not similar:
            continue
        other, other_spec, other_scores = max(similar, key=lambda study: study[0].id)
        (d, dlo, dhi), (s, slo, shi) = _anb_drop(scores, spec), _anb_drop(other_scores, other_spec)
        if d.empty or s.empty:
            continue
        # Per unit transferred, so studies with different n grids compare; seeds are matched by number.
        out.append(versus(f"Study {listing.id} (dissimilar) vs study {other.id} (similar): AnB drop",
                          PAPER["dissimilar"], "AnB drop per unit transferred (points)",
                          (f"dissimilar (study {listing.id})", d / (dhi - dlo)),
                          (f"similar (study {other.id})", s / (shi - slo)), smaller=False, digits=2))
    return out


def block_shuffle(scores: pd.DataFrame, spec: dict, layers: list[str]) -> list[Finding]:
    # Each target's block size from its shifts; the plain image (no block shuffle) ranks as the largest.
    blocks = {t["name"]: next((s["block"] for s in t["data"].get("shifts") or [] if s["kind"] == "block_shuffle"),
                              float("inf")) for t in spec.get("targets", [])}
    nets = _probe(scores, None)
    pairs = {"accuracy gain (points)": 100 * _pt_rit(nets, "final_accuracy"),
             "curve area gain": _pt_rit(nets, "curve_area"), "epochs to 90% saved": -_pt_rit(nets, "epochs_to_90pct")}
    table = pd.concat({k: p["P-T"] - p["RI-T"] for k, p in pairs.items()}, axis=1).reset_index()
    if table.empty:
        return []
    order = sorted(table.target.unique(), key=lambda t: blocks.get(t, float("inf")))
    rows = table.groupby(["target", "seed"]).mean().groupby(level="target").agg(list).loc[order]
    rows["block"] = [f"{blocks[t]}" if blocks.get(t, float("inf")) < float("inf") else "none" for t in order]
    measured = ("P-T (AnB+) minus RI-T (baseB), from the smallest block to the plain image, mean ± 95% CI over "
                "seeds:\n\n" + markdown_table(rows, 3))
    small, plain = order[0], order[-1]
    acc = table.pivot_table(index="seed", columns="target", values="accuracy gain (points)")
    area = table[table.target == small].groupby("seed")["curve area gain"].mean()
    # Erasing a gain needs one: where RI-T matches P-T on the plain image the rule tests nothing.
    moot = "" if (acc[plain] > 0).all() else (f"P-T has no accuracy gain on '{plain}' to erase (gain "
                                              f"{stat(acc[plain], 3)} points)")
    return [finding("Accuracy gain with small blocks", measured, PAPER["block_accuracy"],
                    f"P-T's accuracy gain on '{small}' < its gain on '{plain}'", acc[small] < acc[plain], moot=moot),
            finding("Speed gain with small blocks", f"curve area gain on '{small}': {stat(area, 3)}",
                    PAPER["block_speed"], f"P-T's curve area > RI-T's on '{small}'", area > 0)]


def basins(scores: pd.DataFrame, spec: dict, layers: list[str]) -> list[Finding]:
    pairs, out = _probe(scores, "interpolation", "similarity"), []
    for column, what, key, smaller in (("barrier", "loss barrier", "barrier", True),
                                       ("cka_diagonal_mean", "CKA", "cka", False),
                                       ("l2_distance", "l2 distance", "l2", True),
                                       ("mistakes.mistake_jaccard", "mistake overlap (Jaccard)", "mistakes", False)):
        if column in pairs:
            per = pairs.groupby(["pair", "seed"])[column].mean()
            table = markdown_table(seed_cells(pairs, ["pair"], "seed", column), 4)
            out.append(versus(f"{what}: P-T pairs vs RI-T pairs", PAPER[key], what, ("P-T", per.get("P-T", NONE)),
                              ("RI-T", per.get("RI-T", NONE)), smaller, 4,
                              f"Per pair kind (mean over pairs and targets) and seed:\n\n{table}"))
    critical = _probe(scores, "criticality")
    units = [c for c in critical if c.startswith("rewind.")]
    if units:
        critical = critical.assign(kind=critical.treatment.map({"AnB+": "P-T", "baseB": "RI-T"}),
                                   rewind=critical[units].mean(axis=1))
        per = critical.groupby(["kind", "seed"])["rewind"].mean()
        long = critical.rename(columns=lambda c: c.removeprefix("rewind.")).melt(
            ["kind", "seed"], [u.removeprefix("rewind.") for u in units], var_name="unit", value_name="a")
        out.append(versus("Module criticality: P-T vs RI-T", PAPER["criticality"], "mean rewind tolerance",
                          ("P-T", per.get("P-T", NONE)), ("RI-T", per.get("RI-T", NONE)), True, 3,
                          "Rewind tolerance per unit (the smallest a keeping the error within epsilon; lower = less "
                          "critical), mean ± 95% CI over seeds:\n\n"
                          + markdown_table(seed_cells(long, ["unit"], "kind", "a"), 3)))
    return out


def pretraining_stage(scores: pd.DataFrame, spec: dict, layers: list[str]) -> list[Finding]:
    nets = _probe(scores, None).assign(score=lambda t: 100 * t["final_accuracy"])
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
                "setting, points, mean ± 95% CI over seeds (each seed the mean over the targets and amounts every "
                "epoch has finished):\n\n" + markdown_table(rows))
    # "About as well as": within a stated tolerance, not "the CI reaches 0", which two seeds' wide
    # t interval grants to almost any checkpoint.
    early = [e for e in epochs if e <= last / 2]
    ok = [e for e in early if minus_last[e].mean() >= -STAGE_TOLERANCE]
    evidence = "".join(f" (epoch {e}: {stat(minus_last[e])})" for e in (ok[:1] or early))
    return [finding("Early checkpoint vs the last", measured, PAPER["stage"],
                    f"some checkpoint at epoch <= {last / 2:g} is within {STAGE_TOLERANCE:g} point of epoch {last}"
                    " (its accuracy minus the last's, mean over seeds)", bool(ok) if early else None, evidence)]


def flatness(scores: pd.DataFrame, spec: dict, layers: list[str]) -> list[Finding]:
    # Dissimilarity: the targets' nominal strengths where all have one, else their order in the spec.
    targets = spec.get("targets", [])
    strength = {t["name"]: t["strength"] if all(u.get("strength") is not None for u in targets) else i
                for i, t in enumerate(targets)}

    def by_strength(frame: pd.DataFrame) -> pd.DataFrame:  # indexed by target: the most similar first
        return frame.loc[sorted(frame.index, key=lambda t: strength.get(t, 0))]

    out, sharp, smooth = [], _probe(scores, "sharpness"), _probe(scores, "smoothness")
    units = [c for c in smooth if c.startswith("gradient_sv_mean.")]
    smooth = smooth.assign(gradient_sv=smooth[units].mean(axis=1)) if units else smooth
    for rows, column, key, digits in ((sharp, "top_eigenvalue", "sharpness", 3), (sharp, "trace", "sharpness", 2),
                                      (smooth, "loss_spread_mean", "smoothness", 4),
                                      (smooth, "beta_smoothness_mean", "smoothness", 3),
                                      (smooth, "gradient_sv", "gradient_sv", 3)):
        pairs = _pt_rit(rows, column)
        if pairs.empty:
            continue
        # The rule asks P-T < RI-T on every target, seed by seed; the evidence names where it fails.
        long = pairs.reset_index().melt(["seed", "target"], var_name="kind", value_name=column)
        fails = by_strength((pairs["P-T"] >= pairs["RI-T"]).groupby(level="target").agg(["sum", "size"]))
        where = "; ".join(f"'{t}' in {k} of {n} seeds" for t, k, n in fails.itertuples() if k)
        out.append(finding(f"{CURVATURE[column]}: P-T vs RI-T", "P-T (AnB+) and RI-T (baseB) per target, from the "
                           "most similar to the least, mean ± 95% CI over seeds:\n\n"
                           + markdown_table(by_strength(seed_cells(long, ["target"], "kind", column)), digits),
                           PAPER[key], f"P-T {CURVATURE[column]} < RI-T's on every target",
                           (pairs["P-T"] < pairs["RI-T"]).groupby(level="seed").all(),
                           f" (P-T not below RI-T on {where})" if where else ""))
    chen = _deepest(_probe(scores, "chen_t"))
    cols = [c for c in chen if c.startswith("deviation.")]
    if cols and chen.target.nunique() >= 2:
        chen = chen.assign(deviation=chen[cols].mean(axis=1))
        long = chen.melt(["target", "seed"], cols, var_name="layer", value_name="value")
        table = by_strength(seed_cells(long, ["target"], "layer", "value"))
        table = table.assign(strength=[strength.get(t, 0) for t in table.index])
        per = chen.groupby(["target", "seed"])["deviation"].mean()
        first, last = table.index[0], table.index[-1]
        out.append(versus("Weight deviation on similar vs dissimilar targets", PAPER["deviation"],
                          "mean deviation", (f"'{first}'", per.get(first, NONE)), (f"'{last}'", per.get(last, NONE)),
                          True, 4, "Deviation per layer (AnB+ from the pretrained weights), from the most similar "
                          "target to the least (strength), mean ± 95% CI over seeds:\n\n" + markdown_table(table, 4)))
    return out


def chen_t(scores: pd.DataFrame, spec: dict, layers: list[str]) -> list[Finding]:
    chen = _deepest(_probe(scores, "chen_t"))
    names = [name for name in layers if f"t.{name}" in chen]
    if not names:
        return []
    long = chen.rename(columns=lambda c: c.removeprefix("t.")).melt(["seed"], names, var_name="layer", value_name="T")
    top = long.groupby(["seed", "layer"])["T"].mean().unstack()[names].idxmax(axis=1)
    table = seed_cells(long.assign(kind="T"), ["layer"], "kind", "T").loc[names]
    out = [finding("Chen's T per layer", "T per layer (AnB+ at the deepest n), mean ± 95% CI over seeds (each seed "
                   "the mean over targets and settings):\n\n" + markdown_table(table), PAPER["t_layers"],
                   f"the first layer ({names[0]}) does not have the largest T", top != names[0],
                   f" (largest per seed: {', '.join(top)})")]
    # Data amount N: the fine-tuned network's training images, so that "all" has a number too.
    keys = [k for k in SETTING if k in chen] + ["treatment", "n"]
    points = chen.drop(columns="train_images", errors="ignore").merge(_probe(scores, None)[[*keys, "train_images"]],
                                                                      on=keys)
    if points.get("amount", NONE).nunique() >= 2:
        out.append(_fit("Chen's T against data amount", "log T against log N (training images)", PAPER["t_amount"],
                        fit_line(points, "train_images", "t_overall", log_x=True, log_y=True), points))
    gaps = _probe(scores, "gap")
    if "a_distance" in gaps and gaps.target.nunique() >= 2:
        keys = [k for k in SETTING[:4] if k in gaps]
        points = gaps[[*keys, "a_distance"]].merge(chen.groupby(keys, as_index=False)["t_overall"].mean(), on=keys)
        out.append(_fit("Chen's T against the measured gap", "T against the proxy A-distance", PAPER["t_gap"],
                        fit_line(points, "a_distance", "t_overall"), points))
    return out


def _fit(title: str, what: str, paper: str, fit: dict, points: pd.DataFrame) -> Finding:
    slope = "n/a (fewer than 3 points)" if fit["slope"] is None else f"{fit['slope']:.3f} (R^2 {fit['r2']:.2f})"
    seeds = ", ".join(str(int(s)) for s in sorted(points.seed.unique()))
    return finding(title, f"least-squares slope of {what}: {slope}, over {fit['points']} points (one per seed, target "
                   f"and setting; seeds {seeds})", paper, f"the slope of {what} is negative",
                   None if fit["slope"] is None else fit["slope"] < 0)


# ---------------------------------------------------------------- the report

# (study kind, preset name prefixes, its function): real-data variants (yosinski-mnist, amount-mnist-usps,
# amount-cifar10-halves, ...) share their family's; every cross-data-set study adds Chen's T.
FAMILIES: list[tuple[str, tuple[str, ...], Callable | None]] = [
    ("yosinski", ("yosinski",), yosinski),
    ("basins", ("neyshabur-basins",), basins),
    ("cross_dataset", ("neyshabur-block-shuffle",), block_shuffle),
    ("cross_dataset", ("neyshabur-pretraining-stage",), pretraining_stage),
    ("cross_dataset", ("liu-flatness",), flatness),
    ("cross_dataset", ("gap-", "amount-"), None),
]


def _functions(listing: StudyListing, spec: dict) -> list[Callable] | None:
    """The finding functions of a study; None when it is no preset study this report covers."""
    for kind, prefixes, function in FAMILIES:
        if listing.kind == kind and (listing.preset or "").startswith(prefixes):
            return [f for f in (function, chen_t if kind == "cross_dataset" else None) if f is not None]
    return [yosinski] if listing.kind == "yosinski" and spec.get("groups") else None  # any dissimilar split


def findings_report(database_url: str) -> str:
    """The report: a header naming the studies it reads, each study's findings, then those across studies."""
    engine = get_engine(database_url)
    results, studies = Results(engine), Studies(engine)
    # render_as_string hides the password (***): the report can be shared.
    lines = ["# Findings: preset studies against their papers", "",
             (f"Generated by `python -m backend findings` from `{make_url(database_url).render_as_string()}` on "
              f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, from succeeded jobs only; regenerate it rather than edit "
              "it. 95% confidence intervals are Student t over seeds."), ""]
    covered = []
    for listing in sorted(studies.listing(archived=True, limit=1_000_000), key=lambda s: s.id):
        spec = results.study_spec(listing.id) or {}
        if (functions := _functions(listing, spec)) is not None:
            covered.append((listing, spec, functions))
    if not covered:
        prefixes = ", ".join(f"{p}*" for _, group, _ in FAMILIES for p in group)
        return "\n".join(lines + [(f"No preset study was found in the store: no study has a preset among "
                                   f"{prefixes}, nor is any a Yosinski study with class groups."), ""])
    lines += ["| study id | name | preset | seeds | spec hash | jobs |", "|---|---|---|---|---|---|"]
    for listing, spec, _ in covered:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(listing.counts.items()))
        seeds = ", ".join(map(str, spec.get("seeds", [])))
        lines.append(f"| {listing.id} | {listing.name} | {listing.origin} | {seeds} | "
                     f"`{results.study_spec_hash(listing.id)}` | {listing.total} ({counts}) |")
    lines.append("")
    yosinski_studies = []
    for listing, spec, functions in covered:
        scores = results.study_scores(listing.id)
        chen = _probe(scores, "chen_t")
        # Chen's layers in the network's order (the store's columns are alphabetical), from the table of a
        # job at the deepest n: one at n = 1 lists only the first layer.
        layers = results.job_tables(int(chen.loc[chen.n.idxmax(), "job"])).get("layers", []) if not chen.empty else []
        found = [f for fn in functions for f in fn(scores, spec, layers)] if "seed" in scores else []
        lines += [f"## Study {listing.id}: {listing.name} ({listing.origin}, {listing.kind})", ""]
        lines += [line for f in found for line in markdown_section(f)] or [
            "No succeeded job of this study has measured what its findings need yet.", ""]
        if listing.kind == "yosinski" and "seed" in scores:
            yosinski_studies.append((listing, spec, scores))
    if across := dissimilar_vs_similar(yosinski_studies):
        lines += ["## Across studies", ""] + [line for f in across for line in markdown_section(f)]
    return "\n".join(lines)


def write_findings(path: str | Path, database_url: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(findings_report(database_url))
    return path

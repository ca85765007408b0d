"""The findings report, generated from a real store: tiny preset studies run by a real worker."""

import re

import pytest
import torch

from backend.cli import main
from backend.settings import PROJECT_ROOT
from backend.findings import findings_report
from backend.specs import PRESETS
from backend.specs.base import set_field
from backend.studies import parse_study
from backend.worker import Worker
from db.queue import Queue
from db.results import Results
from db.session import get_engine
from db.submit import submit_study

# Every preset at its quick size, shrunk further so the whole store runs in well under a minute on
# two CPU cores: a small net, 2 epochs, few units, cheap probes.
SMALL_NET = {"model.channels": [8, 16], "model.hidden": [16], "train.epochs": 2}
CHEAP_CROSS = {**SMALL_NET, "probes.scores": None, "n": [3]}
SHRINK = {
    "yosinski-digits": {**SMALL_NET, "seeds": [0, 1], "n": [1, 3], "treatments": ["AnB"], "probes.similarity": None},
    "yosinski-digits-dissimilar": {**SMALL_NET, "n": [1, 3], "treatments": ["AnB", "AnB+"],
                                   "probes.similarity": None},
    "neyshabur-basins": {**SMALL_NET, "probes.plane": None, "probes.images": 64, "probes.interpolation.points": 3,
                         "probes.similarity.images": 64,
                         "probes.criticality": {"alphas": [0.0, 0.5, 1.0], "sigmas": [0.0]}},
    "neyshabur-block-shuffle": {**CHEAP_CROSS, "probes.gap.images": 64},
    "neyshabur-pretraining-stage": {**CHEAP_CROSS, "source_epochs": [1, 2], "probes.gap": None},
    "liu-flatness": {**CHEAP_CROSS, "train.epochs": 1, "probes.gap": None,  # its replays retrain every network
                     "probes.sharpness": {"images": 32, "max_iterations": 3, "trace_samples": 3, "density": False,
                                          "scopes": ["all"]},
                     "probes.smoothness": {"points": 2, "images": 16, "step_sizes": [0.1]}},
    "amount-digits-halves": {**CHEAP_CROSS, "amounts": [5, 10, None], "treatments": ["AnB+"], "probes.gap": None,
                             "n": [1, 3]},
}
TARGETS = {"neyshabur-block-shuffle": ["blocks 1", "plain"], "liu-flatness": ["same classes", "other classes"]}


def tiny(name: str):
    spec = PRESETS[name].spec_dict(quick=True)
    for path, value in SHRINK[name].items():
        set_field(spec, path, value)
    if name in TARGETS:
        spec["targets"] = [t for t in spec["targets"] if t["name"] in TARGETS[name]]
    return parse_study(spec)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("findings")
    threads = torch.get_num_threads()
    # One thread: these nets are too small to split, and on a busy 2-core machine two threads wait on
    # each other (one study: 0.9 s with one thread, 39 s with two).
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:  # the worker's caches stay in the temp folder
            mp.setenv("TRANSFERLAB_VAR", str(folder / "var"))
            url = f"sqlite:///{folder / 'store.db'}"
            queue = Queue(get_engine(url))
            ids = {name: submit_study(queue, tiny(name), name=f"tiny {name}", preset=name) for name in SHRINK}
            Worker(queue, "cpu", artifacts=folder / "artifacts").serve(idle_exit=0)
    finally:
        torch.set_num_threads(threads)
    return url, ids, folder


def section(report: str, study_id: int) -> str:
    """The part of the report about one study."""
    return report.split(f"## Study {study_id}:")[1].split("\n## ")[0]


def test_the_report_names_its_runs_and_quotes_the_store(store):
    url, ids, folder = store
    results = Results(get_engine(url))
    out = folder / "docs" / "findings.md"
    assert main(["findings", "--out", str(out), "--database", url]) == 0
    report = out.read_text()
    assert "from the SQLite file store.db on" in report and str(folder) not in report  # no path of this machine
    assert re.search(r"on \d{4}-\d\d-\d\d \d\d:\d\d", report)
    assert re.search(r"Verdicts: \d+ agrees, \d+ disagrees, \d+ undecided\.", report)
    for name, study_id in ids.items():
        row = next(line for line in report.splitlines() if line.startswith(f"| {study_id} |"))
        assert f"tiny {name}" in row and f"| {name} |" in row and results.study_spec_hash(study_id) in row
        assert f"## Study {study_id}: tiny {name}" in report
    # A number read from the store ourselves: baseB's final accuracy (2 epochs: too few evaluations for
    # the paper's best-10 score), its mean over seeds.
    similar = section(report, ids["yosinski-digits"])
    nets = results.study_scores(ids["yosinski-digits"], kinds=["train"])
    base = 100 * nets[nets.treatment == "baseB"].set_index("seed")["final_accuracy"]
    assert f"{base.mean():.2f} ±" in similar  # two seeds: a confidence interval
    assert "AnB falls from 62.8% at n = 1 to 54.3% at n = 7" in similar
    assert "**Claim tested.** AnB(n=1) - AnB(n=3) > 0, margin ±1 points." in similar
    assert re.search(r"\*\*Verdict: (agrees|disagrees|undecided)\.\*\* ", similar)
    drop = results.study_scores(ids["yosinski-digits"], kinds=["transfer"]).pivot_table(
        index="seed", columns="n", values="final_accuracy").mul(100)
    drop = drop[1] - drop[3]  # the paired difference, seed by seed, read from the store ourselves
    assert (f"AnB(n=1) - AnB(n=3): {drop.mean():.2f} [" in similar
            and f"(95% t, 2 seeds; P(improvement) {(drop > 0).mean():.2f}); per seed 0: {drop[0]:.2f}" in similar)
    # Neyshabur's basins: the barrier between P-T pairs, as stored.
    basins = section(report, ids["neyshabur-basins"])
    pairs = results.study_scores(ids["neyshabur-basins"], kinds=["interpolation"])
    barrier = pairs.set_index("pair").barrier["P-T"]
    assert f"P-T: {barrier:.4f} (one seed, no interval)" in basins
    # One seed decides nothing, whatever its numbers say.
    assert "**Verdict: undecided.** Undecided: 1 seed(s) measured P-T - RI-T loss barrier" in basins
    assert "no loss barrier between P-T runs" in basins and "Module criticality" in basins
    # Every family says something decided from its numbers.
    for name, title in (("neyshabur-block-shuffle", "Speed gain with small blocks"),
                        ("neyshabur-pretraining-stage", "Early checkpoint vs the last"),
                        ("liu-flatness", "Hessian top eigenvalue: P-T vs RI-T"),
                        ("liu-flatness", "gradient top singular value (mean over units and along training)"),
                        ("liu-flatness", "Weight deviation on similar vs dissimilar targets"),
                        ("amount-digits-halves", "Chen's T against data amount")):
        part = section(report, ids[name]).split(f"### {title}")[1].split("\n### ")[0]
        assert re.search(r"\*\*Verdict: (agrees|disagrees|undecided)\.\*\* ", part), (name, title)
    chen = results.study_scores(ids["amount-digits-halves"], kinds=["chen_t"])
    deepest = chen[chen.n == 3]
    amount = section(report, ids["amount-digits-halves"])
    assert f"| conv1 | {deepest['t.conv1'].mean():.2f} |" in amount
    # Every layer the deepest transfer moved, though the first chen_t job (n = 1) has only conv1.
    assert f"| fc1 | {deepest['t.fc1'].mean():.2f} |" in amount
    across = report.split("## Across studies")[1]
    assert f"Study {ids['yosinski-digits-dissimilar']} (dissimilar) vs study {ids['yosinski-digits']}" in across
    assert "the AnB drop grows faster" in across and "**Verdict: " in across


def test_a_store_without_preset_studies_says_so(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert "No preset study was found in the store" in findings_report(url)
    # A custom study (no preset) is not covered; a preset study with nothing run yet says so.
    queue = Queue(get_engine(url))
    submit_study(queue, tiny("yosinski-digits"), name="mine")
    assert "No preset study was found in the store" in findings_report(url)
    study_id = submit_study(queue, tiny("neyshabur-basins"), name="queued", preset="neyshabur-basins")
    report = findings_report(url)
    assert f"| {study_id} | queued | neyshabur-basins |" in report
    assert "No succeeded job of this study has measured what its findings need yet." in section(report, study_id)


def test_the_header_names_the_store_without_password_user_or_path(monkeypatch):
    from sqlalchemy import create_engine

    from backend import findings

    class NoStudies:
        def __init__(self, engine):
            pass

        def listing(self, **_):
            return []

    monkeypatch.setattr(findings, "get_engine", create_engine)  # never connects: nothing is read
    monkeypatch.setattr(findings, "Results", NoStudies)
    monkeypatch.setattr(findings, "Studies", NoStudies)
    report = findings_report("postgresql+psycopg://lab:secret@db.example/transfer")
    assert "secret" not in report and "lab:" not in report and "postgresql database transfer on db.example" in report
    report = findings_report("sqlite:////home/someone/lab/var/transferlab.db")
    assert "/home/someone" not in report and "SQLite file transferlab.db" in report
    # A store inside the project is named by its path there, whichever way the URL gives it.
    for url in (f"sqlite:///{PROJECT_ROOT / 'var' / 'transferlab.db'}", "sqlite:///var/transferlab.db"):
        monkeypatch.chdir(PROJECT_ROOT)
        report = findings_report(url)
        assert "SQLite file var/transferlab.db on" in report and str(PROJECT_ROOT) not in report
    assert "on db.example:5433" in findings_report("postgresql+psycopg://lab:secret@db.example:5433/transfer")


def test_presets_and_their_real_data_variants_dispatch_by_kind_and_name():
    from backend import findings
    from db.studies import StudyListing

    def listing(preset, kind):
        return StudyListing(1, preset or "custom", kind, preset, 0.0, [], "", False, {}, 0.0)

    for name in ("yosinski-digits", "yosinski-mnist", "yosinski-digits-dissimilar", "neyshabur-block-shuffle",
                 "neyshabur-basins", "neyshabur-pretraining-stage", "liu-flatness", "gap-digits-shifts",
                 "gap-mnist-targets", "amount-digits-halves", "amount-mnist-usps", "amount-cifar10-halves"):
        assert findings._functions(listing(name, PRESETS[name].study), PRESETS[name].spec), name
    assert findings._functions(listing("neyshabur-basins-cifar10", "basins"), {}) == [findings.basins]
    assert findings._functions(listing("liu-flatness-mnist", "cross_dataset"), {}) == [
        findings.flatness, findings.chen_t, findings.effective_data]
    assert findings._functions(listing("gap-usps", "cross_dataset"), {}) == [findings.chen_t, findings.effective_data]
    assert findings._functions(listing(None, "yosinski"), {"groups": [[0], [1]]}) == [findings.yosinski]
    assert findings._functions(listing(None, "cross_dataset"), {}) is None
    assert findings._functions(listing("neyshabur-basins", "cross_dataset"), {}) is None  # kind must match too


def test_checkpoints_compare_within_a_setting_and_skip_one_an_epoch_lacks():
    import pandas as pd

    from backend.families import pretraining_stage

    # Two amounts: at 20 images early checkpoints beat the last by 4 points; at "all" they tie. The
    # last epoch's "all" run has not finished, so that setting must drop out of every column, not
    # pull epoch 4's mean above the last's by the gap between the amounts.
    rows = [{"seed": 0, "target": "B", "amount": 20, "treatment": "baseB", "n": 0, "final_accuracy": 0.80},
            {"seed": 0, "target": "B", "amount": "all", "treatment": "baseB", "n": 0, "final_accuracy": 0.99}]
    rows += [{"seed": 0, "target": "B", "amount": amount, "treatment": "AnB+", "n": 5, "source_epoch": epoch,
              "final_accuracy": accuracy}
             for amount, epoch, accuracy in ((20, 4, 0.90), (20, 8, 0.86), ("all", 4, 0.98))]
    finding, = pretraining_stage(pd.DataFrame(rows), {}, [])
    table = finding.measured.split("\n\n")[1]
    assert "| 4 | 90.00 | 10.00 | 4.00 |" in table and "| 8 | 86.00 | 6.00 | 0.00 |" in table
    assert "RI-T: 80.00" in finding.measured and finding.verdict == "undecided"  # one seed: no interval

    def seeds(below: list[float]) -> pd.DataFrame:  # the early checkpoint this far below the last, per seed
        return pd.DataFrame([{"seed": seed, "target": "B", "amount": 20, "treatment": "AnB+", "n": 5,
                              "source_epoch": epoch, "final_accuracy": accuracy}
                             for seed, b in enumerate(below) for epoch, accuracy in ((4, 0.90 - b), (8, 0.90))])

    # "About as well" is equivalence within the stated 1 point (TOST), not "a two-seed interval reaches 0".
    assert pretraining_stage(seeds([0.001, -0.001, 0.0005, 0.0, -0.0005]), {}, [])[0].verdict == "agrees"
    assert pretraining_stage(seeds([0.030, 0.032, 0.028, 0.031, 0.029]), {}, [])[0].verdict == "disagrees"
    wide, = pretraining_stage(seeds([0.03, 0.01]), {}, [])
    assert wide.verdict == "undecided" and wide.seeds_needed > 2 and "seeds would likely decide it" in wide.sentence


def test_the_paper_s_best_10_score_only_where_a_network_is_evaluated_20_times_or_more():
    import pandas as pd

    from backend.families import yosinski

    rows = pd.DataFrame([{"seed": 0, "treatment": t, "n": n, "final_accuracy": final, "best10_accuracy": best}
                         for t, n, final, best in (("baseB", 0, 0.97, 0.94), ("AnB", 1, 0.96, 0.93),
                                                   ("AnB", 3, 0.91, 0.85))])
    short, long = yosinski(rows, {"train": {"epochs": 6}}, []), yosinski(rows, {"train": {"epochs": 40}}, [])
    assert "| 0 |  | 97.00 |" in short[0].measured and "with 6 evaluations" in short[0].measured
    assert "| 0 |  | 94.00 |" in long[0].measured and long[0].measured.startswith("Mean of the 10 best")
    assert "AnB(n=1) - AnB(n=3): 5.00 (one seed" in short[1].measured
    assert "AnB(n=1) - AnB(n=3): 8.00 (one seed" in long[1].measured


def test_block_shuffle_is_undecided_when_pretraining_has_no_gain_on_the_plain_image_to_erase():
    import pandas as pd

    from backend.families import block_shuffle

    spec = {"targets": [{"name": "blocks 1", "data": {"shifts": [{"kind": "block_shuffle", "block": 1}]}},
                        {"name": "plain", "data": {}}]}

    def rows(plain_gain: float) -> pd.DataFrame:
        base = {"blocks 1": 0.70, "plain": 0.90}
        gain = {"blocks 1": 0.01, "plain": plain_gain}
        return pd.DataFrame([{"seed": seed, "target": target, "treatment": treatment, "n": n,
                              "final_accuracy": base[target] + (gain[target] if treatment == "AnB+" else 0),
                              "curve_area": 0.5, "epochs_to_90pct": 2}
                             for seed in (0, 1) for target in base for treatment, n in (("AnB+", 5), ("baseB", 0))])

    accuracy, _ = block_shuffle(rows(0.05), spec, [])
    assert accuracy.verdict == "agrees" and "gain('blocks 1') - gain('plain'): -4.000 [-4.000, -4.000]" in \
        accuracy.measured
    accuracy, _ = block_shuffle(rows(0.0), spec, [])
    assert accuracy.verdict == "undecided"
    assert accuracy.sentence.startswith("Undecided: P-T's accuracy gain on 'plain' is not established")


def test_model_selection_judges_logme_s_ranking_seed_by_seed():
    import pandas as pd

    from backend.families import model_selection

    def rows(order: dict[str, float], noise: list[float]) -> pd.DataFrame:
        scored = [{"candidate": c, "amount": 20, "probe": "scores", "logme": s, "leep": s, "nce": -s, "h_score": 1.0}
                  for c, s in order.items()]
        tuned = [{"candidate": c, "amount": 20, "seed": seed, "treatment": "AnB+",
                  "final_accuracy": 0.8 + 0.05 * rank + e}
                 for seed, e in enumerate(noise) for rank, c in enumerate(["c", "b", "a"])]
        return pd.DataFrame(scored + tuned)

    agree = model_selection(rows({"a": 3.0, "b": 2.0, "c": 1.0}, [0.0, 0.001, -0.001]), {}, [])
    assert [f.verdict for f in agree] == [None, "agrees"]  # the table, then LogME's verdict
    assert "| logme | 1.000 ± 0.000 |" in agree[0].measured and "| h_score |  |" in agree[0].measured
    assert "| nce | -1.000 ± 0.000 |" in agree[0].measured  # NCE ordered the other way here
    reverse = model_selection(rows({"a": 1.0, "b": 2.0, "c": 3.0}, [0.0, 0.001, -0.001]), {}, [])
    assert reverse[1].verdict == "disagrees"
    assert model_selection(pd.DataFrame([{"seed": 0, "treatment": "baseB", "final_accuracy": 0.5}]), {}, []) == []


def test_a_dissimilar_split_is_compared_with_a_similar_study_on_the_same_data():
    from types import SimpleNamespace

    from backend.families import similar_study

    def study(id_, per_class=None, groups=None, epochs=12):
        data = {"source": {"kind": "digits"}, **({"per_class": per_class} if per_class else {})}
        spec = {"data": data, "groups": groups, "model": {"arch": "convnet"}, "train": {"epochs": epochs}}
        return SimpleNamespace(id=id_), spec, None

    groups = [[0, 3, 6, 8, 9], [1, 2, 4, 5, 7]]
    full, full_other_schedule, poor = study(1), study(2, epochs=40), study(3, per_class=25, epochs=40)
    dissimilar, poor_dissimilar = study(4, groups=groups), study(5, per_class=25, groups=groups, epochs=40)
    studies = [full, full_other_schedule, poor, dissimilar, poor_dissimilar]
    # The latest similar study on the same data is `poor` (id 3), but it has 25 images per class: the
    # full-data dissimilar split is compared with a full-data study, the one trained the same way first.
    assert similar_study(dissimilar[1], studies)[0].id == 1
    assert similar_study(poor_dissimilar[1], studies)[0].id == 3
    assert similar_study(full[1], studies) is None  # not a dissimilar split
    assert similar_study(study(6, per_class=50, groups=groups)[1], studies) is None  # no partner at 50 per class

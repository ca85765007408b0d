"""A quick cross-data-set study through a real worker into the store, read back by the explorer's readers."""

from backend.specs import CrossDatasetSpec, parse
from backend.worker import Worker
from db.results import Results
from db.submit import submit_study
from tests.backend.test_cross import STUDY
from ui.charts import gain_table
from backend.stats import fit_line
from ui.explore import metrics_of, varying_axes, with_measurements, with_probes

SMALL = {**STUDY, "seeds": [0], "amounts": [4, None], "n": [2]}
# Sharpness of RI-T and P-T, CKA of P-T against RI-T and the pretrained network: the flatness questions.
PROBED = {**SMALL, "probes": {**STUDY["probes"], "treatments": ["baseB", "AnB+"],
                              "sharpness": {"images": 8, "max_iterations": 3, "trace_samples": 3, "density": False},
                              "similarity": {"images": 8}}}


def test_a_cross_data_set_study_runs_through_a_worker_and_reads_back(queue, tmp_path):
    study_id = submit_study(queue, parse(CrossDatasetSpec, PROBED), name="cross")
    Worker(queue, "cpu", artifacts=tmp_path / "artifacts").serve(idle_exit=0)
    results = Results(queue.engine)
    # pretraining, 4 settings x (baseB, AnB, AnB+), 2 gaps, 4 T, 4 scores, 8 sharpness, 4 x 2 CKA
    assert queue.counts(study_id) == {"succeeded": 1 + 2 * 2 * 3 + 2 + 2 * 2 + 2 * 2 + 8 + 8}
    networks = results.study_scores(study_id, kinds=["train", "transfer"])
    gaps = results.study_scores(study_id, kinds=["gap"])
    chen = results.study_scores(study_id, kinds=["chen_t"])
    scores = results.study_scores(study_id, kinds=["scores"])
    assert set(gaps.target) == {"near", "far"} and gaps.a_distance.between(0, 2).all()
    assert (gaps.set_index("target").a_distance["far"] >= gaps.set_index("target").a_distance["near"])
    assert chen.t_overall.notna().all() and (chen.t_overall > 0).all()
    assert (chen["deviation.conv1"] > 0).all() and (chen.l2_to_init > chen.l2_to_pretrained).all()
    assert {"logme", "leep", "nce", "h_score"} <= set(scores.columns) and (scores.leep <= 0).all()
    networks = with_probes(networks, {kind: results.study_scores(study_id, kinds=[kind])
                                      for kind in ("sharpness", "similarity")})
    probed = networks[networks.treatment.isin(["baseB", "AnB+"])]
    assert probed.top_eigenvalue.notna().all() and networks[networks.treatment == "AnB"].trace.isna().all()
    assert probed[probed.treatment == "AnB+"][["cka_vs_baseA", "cka_vs_baseB"]].notna().all().all()
    rows = with_measurements(networks, gaps, chen, {"near": 0.2, "far": 1.0}, scores)
    assert {"a_distance", "strength", "chen_t", "logme"} <= set(rows.columns)
    assert {"gain", "accuracy", "chen_t", "logme", "t.conv1", "t.conv2", "deviation.conv1",
            "l2_to_pretrained", "top_eigenvalue", "cka_vs_baseB"} <= set(metrics_of(rows))
    assert {"amount", "a_distance", "strength"} <= set(varying_axes(rows))
    gains = gain_table(rows.assign(study="cross"), "final_accuracy")
    assert len(gains) == 2 * 2 * 3 and gains.gain.notna().all()  # targets x amounts x (baseB, AnB, AnB+)
    assert (gains[gains.treatment == "baseB"].gain == 0).all()
    assert rows.loc[rows.treatment == "AnB+", "chen_t"].notna().all()
    assert rows.loc[rows.treatment != "AnB+", "chen_t"].isna().all()


def test_fit_line_recovers_a_power_law():
    import pandas as pd

    points = pd.DataFrame({"amount": [10, 30, 100, 300, 1000], "t": [10 * n ** -0.6 for n in (10, 30, 100, 300, 1000)]})
    fit = fit_line(points, "amount", "t", log_x=True, log_y=True)
    assert abs(fit["slope"] + 0.6) < 1e-9 and abs(fit["r2"] - 1) < 1e-12 and fit["points"] == 5
    assert fit_line(points.head(2), "amount", "t")["slope"] is None  # too few points for a line

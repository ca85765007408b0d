"""A tiny model-selection study through a real worker into the store: every job succeeds, and the stored
rank agreement is the one its stored scores and fine-tuned accuracies give, read back as the page reads it."""

import math

import numpy as np
import pytest

from backend.stats import rank_agreement
from backend.specs.selection import RANK_SCORES
from backend.studies import expand, parse_study
from backend.studies.selection import SCRATCH
from backend.worker import Worker
from db.results import Results
from db.submit import submit_study
from tests.backend.test_model_selection import STUDY
from backend.studies.selection import candidate_table
from ui.selection import agreement_table

NAMES = [c["name"] for c in STUDY["candidates"]]


def same(stored: float, expected: float) -> bool:
    return (math.isnan(stored) and math.isnan(expected)) or stored == pytest.approx(expected, abs=1e-9)


def test_a_model_selection_study_runs_and_its_ranking_matches_the_stored_accuracies(queue, tmp_path):
    study = parse_study(STUDY)
    study_id = submit_study(queue, study, name="selection", preset="selection-digits")  # a preset family: findings
    Worker(queue, "cpu", artifacts=tmp_path / "artifacts").serve(idle_exit=0)
    assert queue.counts(study_id) == {"succeeded": len({job.key for job in expand(study)})}
    results = Results(queue.engine)

    ranking = results.study_scores(study_id, kinds=["rank_agreement"])
    assert len(ranking) == 1 and ranking.amount.tolist() == [6] and ranking.probe.tolist() == ["ranking"]
    stored = ranking.iloc[0]
    tables = results.job_tables(int(stored.job))
    tuned = results.study_scores(study_id, kinds=["transfer"])
    assert len(tuned) == 3 * 2 and set(tuned.treatment) == {"AnB+"} and tuned.final_accuracy.between(0, 1).all()
    accuracy = (100 * tuned.groupby("candidate").final_accuracy.mean())[NAMES]
    assert tables["accuracy"] == pytest.approx(accuracy.tolist())  # in the spec's candidate order
    assert accuracy[tables["best"]] == accuracy.max() and stored.best_accuracy == pytest.approx(accuracy.max())
    runner_up = accuracy.drop(tables["best"]).max()
    assert accuracy[tables["runner_up"]] == runner_up and stored.lead == pytest.approx(accuracy.max() - runner_up)

    # Each score's agreement is the one its stored scores and the stored accuracies give.
    scored = results.study_scores(study_id, kinds=["scores"]).set_index("candidate").loc[NAMES]
    for score in RANK_SCORES:
        assert tables["scores"][score] == pytest.approx(scored[score].tolist())
        expected = rank_agreement(scored[score].tolist(), accuracy.tolist())
        for measure, value in expected.items():
            assert same(stored[f"{score}.{measure}"], value), (score, measure)
    assert stored.score_seconds == pytest.approx(scored.seconds.sum())
    assert stored.fine_tune_seconds == pytest.approx(tuned.train_seconds.sum())
    assert stored.cost_ratio == pytest.approx(stored.fine_tune_seconds / stored.score_seconds)

    # The page's readers: the same numbers, the baseline beside the candidates.
    rows = results.study_scores(study_id, kinds=["scores", "transfer", "train"], labels={"amount": 6})
    table = candidate_table(rows, NAMES)
    assert table.candidate.tolist() == [*NAMES, SCRATCH] and (table.seeds == 2).all()
    assert table.set_index("candidate").accuracy[NAMES].tolist() == pytest.approx(tables["accuracy"])
    assert table.half_width.notna().all() and (table.half_width >= 0).all()
    assert table.set_index("candidate").loc[NAMES, "jobs"].map(lambda j: len(j.split(","))).eq(2).all()
    assert table.set_index("candidate").loc[NAMES, "logme"].tolist() == pytest.approx(scored.logme.tolist())
    agreement = agreement_table(ranking)
    assert len(agreement) == len(RANK_SCORES) and set(agreement.job) == {int(stored.job)}
    logme = agreement.set_index("score").loc["LogME"]
    assert same(logme["weighted Kendall's tau"], stored["logme.weighted_tau"])
    assert np.isclose(logme["fine-tuning / scoring"], stored.cost_ratio)
    from backend.findings import findings_report

    report = findings_report(str(queue.engine.url.render_as_string(hide_password=False)))
    assert "### Rank agreement at 6 training images per class" in report
    assert "### LogME ranks the candidates at 6 training images per class" in report

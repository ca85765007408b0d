"""Sequential seeds through a real worker and a real store: a study with a precision rule adds one
seed at a time until its interval is as narrow as asked, or its budget is spent, exactly once per seed,
even when a worker is killed mid-seed."""

import signal

import pytest
from sqlalchemy import select

from backend.specs import SpecError
from backend.studies import parse_study
from backend.worker import Worker
from db.queue import Queue
from db.schema import Job, Study
from db.sequential import BUDGET, REACHED, SeedProgress, advance, progress, set_rule
from db.session import get_engine, session_scope
from db.submit import submit_study
from tests.db.test_worker import start_worker, wait_for


def tiny_study(half_width, max_seeds, epochs=1):
    return parse_study({
        "study": "yosinski", "data": {"source": {"kind": "digits"}, "per_class": 20},
        "model": {"arch": "convnet", "channels": [4], "hidden": [8]},
        "train": {"epochs": epochs, "batch_size": 64}, "treatments": ["AnB+"], "n": [1], "seeds": [0, 1],
        "probes": {"sharpness": None, "similarity": None},
        "precision": {"quantity": "anb_plus_gain", "half_width": half_width, "max_seeds": max_seeds}})


def seeds_of(queue, study_id):
    """seed -> how many baseA jobs it has (one per seed when nothing was added twice)."""
    with session_scope(queue.engine) as s:
        labels = s.scalars(select(Job.labels).where(Job.study_id == study_id)).all()
    out = {}
    for label in labels:
        if label.get("treatment") == "baseA":
            out[label["seed"]] = out.get(label["seed"], 0) + 1
    return out


def test_a_loose_width_stops_at_the_first_seeds(queue, tmp_path):
    study_id = submit_study(queue, tiny_study(half_width=1000.0, max_seeds=6))
    Worker(queue, "cpu", artifacts=tmp_path).serve(idle_exit=0)
    assert seeds_of(queue, study_id) == {0: 1, 1: 1}
    done = progress(queue, study_id)
    assert done.state == REACHED and done.seeds == 2 and done.half_width <= 1000.0
    assert "seed 2 of at most 6: interval ±" in done.text() and "precision reached" in done.text()


def test_an_impossible_width_stops_at_the_budget(queue, tmp_path):
    study_id = submit_study(queue, tiny_study(half_width=1e-9, max_seeds=4))
    Worker(queue, "cpu", artifacts=tmp_path).serve(idle_exit=0)
    assert seeds_of(queue, study_id) == {0: 1, 1: 1, 2: 1, 3: 1}
    done = progress(queue, study_id)
    assert done.state == BUDGET and done.seeds == 4 and done.measured == 4
    assert queue.counts(study_id) == {"succeeded": 12}
    assert not advance(queue, study_id)  # a finished rule adds nothing more


def test_a_round_is_added_once_even_when_two_workers_evaluate_it(queue, tmp_path):
    study_id = submit_study(queue, tiny_study(half_width=1e-9, max_seeds=5))
    Worker(queue, "cpu", artifacts=tmp_path).serve(max_jobs=6)  # seeds 0 and 1, then seed 2 is queued
    with session_scope(queue.engine) as s:
        round_ = s.get(Study, study_id).seed_round
    assert round_ == 1 and not advance(queue, study_id)  # seed 2 is queued: nothing to evaluate yet
    assert seeds_of(queue, study_id) == {0: 1, 1: 1, 2: 1}


def test_add_seeds_later_on_a_finished_study(queue, tmp_path):
    spec = tiny_study(half_width=1.0, max_seeds=2).model_copy(update={"precision": None})
    study_id = submit_study(queue, spec)
    Worker(queue, "cpu", artifacts=tmp_path).serve(idle_exit=0)
    assert progress(queue, study_id) is None
    set_rule(queue, study_id, "anb_plus_gain", 1e-9, 3)  # "Add seeds until decided"
    Worker(queue, "cpu", artifacts=tmp_path).serve(idle_exit=0)
    assert seeds_of(queue, study_id) == {0: 1, 1: 1, 2: 1} and progress(queue, study_id).state == BUDGET


def test_a_rule_the_study_cannot_measure_is_refused():
    with pytest.raises(SpecError, match="precision.quantity: unknown quantity 'pt_gain' for a yosinski study"):
        parse_study({"study": "yosinski", "data": {"source": {"kind": "digits"}}, "seeds": [0, 1],
                     "precision": {"quantity": "pt_gain", "half_width": 1.0}})
    assert SeedProgress.of(None) is None


def test_a_worker_killed_mid_seed_is_resumed_without_duplicated_seeds(database_url, tmp_path):
    queue = Queue(get_engine(database_url))
    study_id = submit_study(queue, tiny_study(half_width=1e-9, max_seeds=3, epochs=80))

    def in_second_round():
        with session_scope(queue.engine) as s:
            running = s.scalars(select(Job.labels).where(Job.study_id == study_id, Job.status == "running")).all()
            return s.get(Study, study_id).seed_round >= 1 and any(label["seed"] >= 2 for label in running)

    victim = start_worker(database_url, tmp_path, "--lease", "2")
    assert wait_for(in_second_round, timeout=300)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    survivor = start_worker(database_url, tmp_path, "--lease", "2", "--idle-exit", "6")
    out = survivor.communicate(timeout=600)[0]
    assert survivor.returncode == 0, out
    assert seeds_of(queue, study_id) == {0: 1, 1: 1, 2: 1}
    assert queue.counts(study_id) == {"succeeded": 9} and progress(queue, study_id).state == BUDGET


def test_a_study_whose_seed_measured_nothing_stops_instead_of_adding_seeds(queue, tmp_path):
    study_id = submit_study(queue, tiny_study(half_width=1e-9, max_seeds=6))
    with session_scope(queue.engine) as s:
        queued = s.scalars(select(Job.id).where(Job.study_id == study_id)).all()
    for job_id in queued:  # the user cancels the study: nothing was measured
        queue.cancel(job_id)
    assert not advance(queue, study_id)
    assert seeds_of(queue, study_id) == {0: 1, 1: 1}
    stopped = progress(queue, study_id)
    assert stopped.state == "stalled" and "stopped: a seed measured nothing" in stopped.text()

"""Clone with edits: the edited spec passes the checks a submit of that job kind runs, or nothing is queued."""

import pytest
from sqlalchemy import func, select

from backend.specs import SpecError
from backend.studies import parse_study
from db.results import Results
from db.schema import Job
from db.session import session_scope
from db.submit import clone_job, submit_study

SYN = {"kind": "synthetic", "n_classes": 4, "train_per_class": 6, "test_per_class": 3, "size": 8}


def _study(queue) -> int:
    spec = {"study": "cross_dataset", "source": {"source": SYN}, "model": {"channels": [4], "hidden": [4]},
            "train": {"epochs": 1, "batch_size": 8}, "seeds": [0], "n": [1],
            "targets": [{"name": "near", "data": {"source": {**SYN, "gap": 0.3}}}]}
    return submit_study(queue, parse_study(spec))


def _jobs(queue) -> int:
    with session_scope(queue.engine) as s:
        return s.scalar(select(func.count()).select_from(Job))


@pytest.mark.parametrize("kind", ["train", "transfer"])
@pytest.mark.parametrize("edits, field, message", [
    ({"data.classes.include": [10**12, 1]}, "data.classes.include", r"classes \[1000000000000\] do not exist"),
    ({"data.classes.first": 9}, "data.classes.first", "asks for the first 9 of 4 classes"),
    ({"data.source": {"kind": "folder", "root": "/etc"}}, "data.source.root", "outside the folders"),
    ({"train.batch_size": 10**9}, "train.batch_size", "would need about"),
    ({"model.hidden": [10**6, 10**6], "source.model.hidden": [10**6, 10**6]}, "model", "would need about"),
    ({"train.batch_size": 1}, "train.batch_size", "BatchNorm needs at least 2 images"),
])
def test_a_clone_is_refused_as_its_submit_would_be_and_queues_nothing(queue, kind, edits, field, message):
    _study(queue)
    job = int(Results(queue.engine).jobs(kind=kind).id.iloc[0])
    if kind == "train":
        edits = {k: v for k, v in edits.items() if not k.startswith("source.")}
    before = _jobs(queue)
    with pytest.raises(SpecError, match=message) as err:
        clone_job(queue, job, edits)
    assert err.value.field == field
    assert _jobs(queue) == before


def test_a_good_clone_of_each_kind_is_queued(queue):
    _study(queue)
    jobs = Results(queue.engine).jobs()
    for kind in ("train", "transfer", "gap"):
        job = int(jobs[jobs.kind == kind].id.iloc[0])
        edits = {"target.images": 10} if kind == "gap" else {"train.epochs": 2, "data.classes.include": [0, 3]}
        clone = clone_job(queue, job, edits)
        assert queue.job_spec(clone)[0] == kind
    gap = int(jobs[jobs.kind == "gap"].id.iloc[0])
    with pytest.raises(SpecError, match="do not exist") as err:  # a probe's images: their class ids too
        clone_job(queue, gap, {"target.data.classes.include": [99, 1]})
    assert err.value.field == "target.data.classes.include"

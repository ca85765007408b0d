"""A data preview queued, run by a worker and read back, on every backend."""

import numpy as np

from backend.specs import canonical_json, parse, spec_hash
from backend.specs.preview import DataPreviewSpec
from backend.worker import Worker
from db.previews import Previews, request_preview
from db.queue import NewJob
from tests.db.test_worker import tiny

DATA = {"source": {"kind": "synthetic", "n_classes": 4, "train_per_class": 3, "test_per_class": 2, "size": 8}}


def test_a_preview_round_trip_runs_first_and_is_reused(queue, tmp_path):
    study_job = tiny(0)
    queue.submit("s", {}, "s", [NewJob("a", "train", canonical_json(study_job), spec_hash(study_job), {})])
    spec = parse(DataPreviewSpec, {"data": DATA, "seeds": [0, 1], "per_class_samples": 2})
    job_id = request_preview(queue, spec)
    assert request_preview(queue, spec) == job_id  # queued once, however often it is asked for
    previews = Previews(queue.engine)
    waiting = previews.get(job_id)
    assert waiting.status == "queued" and waiting.preview is None

    assert Worker(queue, "cpu", artifacts=tmp_path).serve(max_jobs=1) == 1  # ahead of the study's job
    done = previews.get(job_id)
    assert done.status == "succeeded", done.error
    p = done.preview
    assert p.classes == [f"shape{c}" for c in range(4)] and p.counts == {"train": [3] * 4, "test": [2] * 4}
    assert p.image_shape == (1, 8, 8) and p.sample_classes == p.classes
    assert p.samples.dtype == np.uint8 and p.samples.shape[2] == 1 and p.samples.any()
    assert set(p.halves) == {0, 1} and sorted(p.halves[0]["A"] + p.halves[0]["B"]) == p.classes
    assert queue.counts() == {"succeeded": 1, "queued": 1}

    assert request_preview(queue, spec) == job_id  # done: reused at once
    other = request_preview(queue, parse(DataPreviewSpec, {"data": DATA, "seeds": [2]}))
    assert other != job_id and previews.get(other).status == "queued"
    assert previews.get(10_000) is None


def test_a_preview_of_classes_the_source_lacks_is_refused_and_nothing_is_queued(queue):
    import pytest

    from backend.specs import SpecError

    bad = parse(DataPreviewSpec, {"data": {**DATA, "classes": {"include": [0, 4]}}})
    with pytest.raises(SpecError) as info:
        request_preview(queue, bad)
    assert info.value.field == "data.classes.include" and "ids 0..3" in str(info.value)
    assert queue.counts() == {}

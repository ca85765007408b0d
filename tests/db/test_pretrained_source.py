"""A study from a weights file through a real worker: imported once, checked, read by every job after it."""

from sqlalchemy import select

from backend.worker import Worker
from db.results import Results
from db.schema import Artifact, Job
from db.session import session_scope
from db.submit import submit_study
from backend.specs.pretrained import sha256_of
from backend.studies import parse_study
from tests.backend.test_pretrained_studies import _study


def test_a_weights_file_is_imported_once_and_every_measure_reads_it(queue, tmp_path):
    study = parse_study(_study(tmp_path, seeds=[0]))
    study_id = submit_study(queue, study, name="from a file")
    assert queue.counts(study_id).get("failed") is None
    Worker(queue, "cpu", artifacts=tmp_path / "artifacts").serve(idle_exit=0)
    counts = queue.counts(study_id)
    assert set(counts) == {"succeeded"}, counts
    results = Results(queue.engine)
    imported = results.study_scores(study_id, kinds=["import"])
    assert len(imported) == 1 and imported.unit_count.iloc[0] == 4  # conv1, conv2, fc1, classifier
    chen = results.study_scores(study_id, kinds=["chen_t"])
    assert (chen.theta_r_drawn == 1.0).all() and chen.t_overall.notna().all()
    with session_scope(queue.engine) as s:
        job = s.scalar(select(Job.id).where(Job.study_id == study_id, Job.kind == "import"))
        kinds = set(s.scalars(select(Artifact.kind).where(Artifact.job_id == job)))
        stored = s.scalar(select(Job.spec).where(Job.id == job))
    assert kinds == {"checkpoint", "init"}  # the network, and its drawn theta_r beside it
    assert sha256_of(tmp_path / "net.safetensors") in stored  # the study names the bytes it read

"""A lab network source given by job id or spec hash: an import job is a network too (its weights file)."""

import pytest
from sqlalchemy import select

from backend.specs import SpecError, parse, spec_hash
from backend.specs.pretrained import NetworkFile, pin_network
from backend.studies import expand, parse_study
from db.previews import request_import
from db.schema import Job
from db.session import session_scope
from db.submit import resolve_lab_networks, submit_study
from tests.backend.test_pretrained_studies import MODEL, SYN, _weights

LATER = {"study": "cross_dataset", "targets": [{"name": "far", "data": {"source": {**SYN, "gap": 1.0}}}], "n": [1],
         "train": {"epochs": 1, "batch_size": 8}, "seeds": [0]}


def test_an_import_job_is_a_lab_network_source(queue, tmp_path):
    network = pin_network(parse(NetworkFile, {"path": _weights(tmp_path), "model": MODEL, "data": {"source": SYN}}))
    imported = request_import(queue, network)  # as the New study page imports a file it previews
    for ref in (imported, str(imported), spec_hash(network)[:12]):
        tree = resolve_lab_networks({**LATER, "pretrained": {"kind": "lab", "job": ref}}, queue)
        study = parse_study(tree)
        assert study.pretrained == network  # the weights file itself, pinned: a source as it stands
    plan = expand(study)
    assert [j.key for j in plan if j.kind == "import"] == [spec_hash(network)]  # the same import, reused
    study_id = submit_study(queue, study)
    with session_scope(queue.engine) as s:
        hashes = set(s.scalars(select(Job.spec_hash).where(Job.study_id == study_id, Job.kind == "import")))
    assert hashes == {spec_hash(network)}


def test_a_probe_is_still_not_a_network(queue, tmp_path):
    spec = {**LATER, "source": {"source": SYN}, "model": MODEL,
            "targets": [{"name": "near", "data": {"source": {**SYN, "gap": 0.3}}}]}
    study_id = submit_study(queue, parse_study(spec))
    with session_scope(queue.engine) as s:
        probe = s.scalar(select(Job.id).where(Job.study_id == study_id, Job.kind == "gap"))
    with pytest.raises(SpecError, match="is a gap job, not a network") as err:
        resolve_lab_networks({**LATER, "pretrained": {"kind": "lab", "job": probe}}, queue)
    assert err.value.field == "pretrained.job" and "import" in str(err.value)

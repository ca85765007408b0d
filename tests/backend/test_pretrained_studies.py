"""Studies whose source is a pretrained network: a weights file or a network of this lab."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from backend.models import build_model
from backend.specs import SpecError, TrainJobSpec, TransferJobSpec, canonical_json, parse, spec_hash
from backend.specs.pretrained import pin_files
from backend.studies import STUDY_KINDS, expand, parse_study
from backend.studies.local import run_local

SYN = {"kind": "synthetic", "n_classes": 4, "train_per_class": 12, "test_per_class": 6, "size": 8}
MODEL = {"arch": "convnet", "channels": [4, 8], "hidden": [8]}
INPUT = {"size": 8, "channels": 1, "mean": [0.5], "std": [0.25]}


def _weights(tmp_path, classes: int = 6) -> str:
    """A convnet's weights as a safetensors file named by its units, its input in the file's metadata."""
    torch.manual_seed(11)
    net = build_model(parse(TrainJobSpec, {"data": {"source": SYN}, "model": MODEL}).model, (1, 8, 8), classes)
    path = tmp_path / "net.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path),
              metadata={"input": json.dumps(INPUT)})
    return str(path)


def _study(tmp_path, **fields) -> dict:
    return {"study": "cross_dataset", "pretrained": {"path": _weights(tmp_path), "model": MODEL,
                                                     "data": {"source": SYN}},
            "targets": [{"name": "near", "data": {"source": {**SYN, "gap": 0.3}}}],
            "train": {"epochs": 1, "batch_size": 8}, "seeds": [0, 1], "n": [1, 2],
            "probes": {"gap": {"images": 20}, "scores": {"images": 20},
                       "sharpness": {"images": 8, "max_iterations": 3, "trace_samples": 3, "density": False},
                       "similarity": {"images": 8}}, **fields}


def test_a_cross_study_from_a_weights_file_runs_every_measure(tmp_path):
    study = pin_files(parse_study(_study(tmp_path)))
    assert study.model == study.pretrained.model and study.pretrained.sha256  # the network's own, pinned
    assert study.input_format.size == 8 and study.input_format.channels == 1  # from the file's metadata
    plan = expand(study)
    imports = {j.key for j in plan if j.kind == "import"}
    assert len(imports) == 1  # one network for every seed: no pretraining
    assert not any(j.kind == "train" and j.labels["treatment"] == "baseA" for j in plan)
    outcomes = run_local(plan, "cpu")
    kinds = {o.job.kind for o in outcomes}
    assert kinds == {"import", "train", "transfer", "gap", "chen_t", "scores", "sharpness", "similarity"}
    table, text, checks = STUDY_KINDS["cross_dataset"].summarise(outcomes)
    assert set(table.treatment) == {"baseB", "AnB", "AnB+"} and set(table.n) == {0, 1, 2}
    assert table[table.treatment == "AnB+"].chen_t.notna().all()
    chen = [o for o in outcomes if o.job.kind == "chen_t"]
    assert all(o.output.scalars["theta_r_drawn"] == 1.0 for o in chen)  # flagged: no recorded init
    assert "theta_r" in text  # and the report says so
    unknown = {**_study(tmp_path), "n": [1], "seeds": [0]}
    del unknown["pretrained"]["data"]
    plan = expand(pin_files(parse_study(unknown)))
    assert not any(j.kind == "gap" for j in plan)
    text = STUDY_KINDS["cross_dataset"].summarise(run_local(plan, "cpu"))[1]
    assert "domain gap not measured" in text


def test_a_basins_study_from_a_weights_file_interpolates_its_runs(tmp_path):
    spec = {**_study(tmp_path), "study": "basins", "runs": 2,
            "probes": {"similarity": None, "criticality": None, "interpolation": {"points": 3}, "images": 8}}
    for key in ("n", "seeds"):
        spec.pop(key)
    outcomes = run_local(expand(pin_files(parse_study(spec))), "cpu")
    barriers = [o.output.scalars for o in outcomes if o.job.kind == "interpolation"]
    assert len(barriers) == 3 and all("barrier" in s for s in barriers)


def test_a_lab_network_is_reused_as_the_source():
    network = {"data": {"source": SYN}, "model": MODEL, "train": {"epochs": 1, "batch_size": 8, "seed": 4}}
    spec = {"study": "cross_dataset", "pretrained": {"kind": "lab", "network": network},
            "targets": [{"name": "near", "data": {"source": {**SYN, "gap": 0.3}}}], "n": [1]}
    plan = expand(parse_study(spec))
    base_a = [j for j in plan if j.labels.get("treatment") == "baseA"]
    assert {j.key for j in base_a} == {spec_hash(parse(TrainJobSpec, network))}  # its own job: its run is reused
    assert any(j.kind == "gap" for j in plan)  # the lab knows its data: the gap is measured


@pytest.mark.parametrize("fields, field, message", [
    ({"input": {"size": 16}}, "input.size", "takes 8x8 grey images but target 'near' comes as size 16"),
    ({"model": {"arch": "mlp"}}, "model", "the pretrained network is a convnet"),
    ({"source_epochs": [1]}, "source_epochs", "no pretraining epochs"),
])
def test_a_study_that_cannot_use_its_network_names_both(tmp_path, fields, field, message):
    with pytest.raises(SpecError, match=message) as err:
        pin_files(parse_study(_study(tmp_path, **fields)))
    assert err.value.field == field


def test_pinning_is_what_the_stored_study_records(tmp_path):
    study = parse_study(_study(tmp_path))
    pinned = pin_files(study)
    assert study.pretrained.sha256 is None and pinned.pretrained.sha256
    assert pin_files(pinned) == pinned  # idempotent
    assert canonical_json(parse_study(json.loads(canonical_json(pinned)))) == canonical_json(pinned)


def test_a_lab_network_given_by_job_id_or_hash_is_looked_up_in_the_store(tmp_path):
    from db.queue import Queue
    from db.results import Results
    from db.session import get_engine
    from db.submit import resolve_lab_networks, submit_study

    queue = Queue(get_engine(f"sqlite:///{tmp_path / 'store.db'}"))
    network = {"data": {"source": SYN}, "model": MODEL, "train": {"epochs": 1, "batch_size": 8, "seed": 4}}
    first = {"study": "cross_dataset", "source": {"source": SYN}, "model": MODEL, "train": network["train"],
             "seeds": [4], "targets": [{"name": "near", "data": {"source": {**SYN, "gap": 0.3}}}], "n": [1]}
    submit_study(queue, parse_study(first))
    results = Results(queue.engine)
    base_a = int(results.jobs(kind="train", labels={"treatment": "baseA"}).id.iloc[0])
    later = {"study": "cross_dataset", "pretrained": {"kind": "lab", "job": base_a},
             "targets": [{"name": "far", "data": {"source": {**SYN, "gap": 1.0}}}], "n": [1]}
    resolved = parse_study(resolve_lab_networks(later, queue))
    assert resolved.pretrained.network == parse(TrainJobSpec, network)
    digest = spec_hash(parse(TrainJobSpec, network))
    assert resolve_lab_networks({**later, "pretrained": {"kind": "lab", "job": digest[:10]}}, queue) == \
        resolve_lab_networks(later, queue)
    transfer = int(results.jobs(kind="transfer", labels={"treatment": "AnB+"}).id.iloc[0])
    fine_tuned = parse_study(resolve_lab_networks({**later, "pretrained": {"kind": "lab", "job": transfer}}, queue))
    assert isinstance(fine_tuned.pretrained.network, TransferJobSpec)  # a network fine-tuned here, as a source
    plan = expand(fine_tuned)
    assert plan[0].spec == fine_tuned.pretrained.network and not any(j.kind == "chen_t" for j in plan)
    probe = int(results.jobs(kind="scores").id.iloc[0])
    for ref, message in ((999, "no job 999"), ("nothex!", "neither a job id"), (probe, "not a network")):
        with pytest.raises(SpecError, match=message):
            resolve_lab_networks({**later, "pretrained": {"kind": "lab", "job": ref}}, queue)
    with pytest.raises(SpecError, match="looked up in the store"):
        parse_study(later)  # unresolved: parse says where it is resolved


def test_a_vit_source_runs_every_measure(tmp_path):
    vit = {"arch": "vit", "patch": 4, "dim": 16, "depth": 2, "heads": 2}
    torch.manual_seed(2)
    net = build_model(parse(TrainJobSpec, {"data": {"source": SYN}, "model": vit}).model, (1, 8, 8), 5)
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata={"input": json.dumps(INPUT)})
    spec = {**_study(tmp_path), "pretrained": {"path": str(path), "model": vit, "data": {"source": SYN}}}
    outcomes = run_local(expand(pin_files(parse_study(spec))), "cpu")
    assert {o.job.kind for o in outcomes} == {"import", "train", "transfer", "gap", "chen_t", "scores", "sharpness",
                                              "similarity"}
    table = STUDY_KINDS["cross_dataset"].summarise(outcomes)[0]
    assert table[table.treatment == "AnB+"].chen_t.notna().all() and table.final.notna().all()

"""The landscape job kinds run inside a study: their numbers tie back to the networks they measure."""

import pytest

from backend.specs import TrainJobSpec, parse
from backend.studies import expand, parse_study
from backend.studies.local import run_local
from backend.train import train_job

SYN = {"kind": "synthetic", "n_classes": 4, "train_per_class": 16, "test_per_class": 8, "size": 8}
# No normalisation layers: every probe evaluates exactly what the network's own evaluation did.
NET = {"arch": "convnet", "channels": [4, 8], "hidden": [8], "norm": "none"}
BASINS = {"study": "basins", "source": {"source": SYN}, "targets": [{"name": "far", "data": {"source": {**SYN, "gap": 1}}}],
          "model": NET, "train": {"epochs": 3, "batch_size": 8}, "runs": 2,
          "probes": {"images": 32, "interpolation": {"points": 5, "bn_images": 8}, "similarity": {"images": 16},
                     "criticality": {"alphas": [0, 0.5, 1], "sigmas": [0, 0.1], "samples": 1},
                     "plane": {"resolution": 3, "bn_images": 8}}}


@pytest.fixture(scope="module")
def basins():
    return run_local(expand(parse_study(BASINS)), "cpu")


def by_key(outcomes):
    return {o.job.key: o for o in outcomes}


def test_the_path_ends_are_the_two_networks_and_their_mistakes_add_up(basins):
    outcomes = by_key(basins)
    paths = [o for o in basins if o.job.kind == "interpolation"]
    assert {o.job.labels["pair"] for o in paths} == {"P-T", "RI-T", "P-T vs RI-T"}
    for o in paths:
        a, b = outcomes[o.job.spec.a].output.scalars, outcomes[o.job.spec.b].output.scalars
        s = o.output.scalars
        assert s["accuracy_a"] == pytest.approx(a["final_accuracy"]) and s["accuracy_b"] == pytest.approx(b["final_accuracy"])
        assert s["barrier"] >= 0 and s["l2_distance"] > 0
        wrong_a = s["mistakes.both_wrong_fraction"] + s["mistakes.only_a_wrong_fraction"]
        assert wrong_a == pytest.approx(1 - a["final_accuracy"])
        assert o.output.arrays["path"].shape == (3, 5)


def test_criticality_at_the_trained_weights_is_the_trained_error(basins):
    outcomes = by_key(basins)
    for o in (o for o in basins if o.job.kind == "criticality"):
        network = outcomes[o.job.spec.network].output.scalars
        assert o.output.scalars["trained_error"] == pytest.approx(1 - network["final_accuracy"])
        error = o.output.arrays["criticality_error"]  # (units, a, sigma)
        assert error.shape == (len(o.output.tables["units"]), 3, 2)
        assert error[:, -1, 0] == pytest.approx([o.output.scalars["trained_error"]] * error.shape[0])


def test_the_plane_is_centred_on_the_network(basins):
    outcomes = by_key(basins)
    for o in (o for o in basins if o.job.kind == "plane"):
        network = outcomes[o.job.spec.network].output
        assert o.output.arrays["plane_loss"].shape == (3, 3)
        test_loss = [v for k, _, v in network.curves if k == "test_loss"][-1]
        assert o.output.scalars["loss_centre"] == pytest.approx(test_loss, rel=1e-5)


def test_smoothness_replays_the_run_exactly_and_fine_tunes_from_pretraining_epochs():
    study = parse_study({"study": "cross_dataset", "source": {"source": SYN},
                         "targets": [{"name": "far", "data": {"source": {**SYN, "gap": 1}}}], "model": NET,
                         "train": {"epochs": 3, "batch_size": 8}, "n": [2], "treatments": ["AnB+"],
                         "source_epochs": [1, 3],
                         "probes": {"gap": None, "scores": None, "chen_t": False, "smoothness": {"points": 3}}})
    outcomes = run_local(expand(study), "cpu")
    networks = by_key(outcomes)
    replays = [o for o in outcomes if o.job.kind == "smoothness"]
    assert {networks[o.job.spec.network].job.labels["treatment"] for o in replays} == {"baseB", "AnB+"}
    for o in replays:
        run = networks[o.job.spec.network].output.scalars
        assert o.output.scalars["replay_accuracy"] == run["final_accuracy"]  # the same run, step for step
        steps = sorted({step for key, step, _ in o.output.curves if key == "loss_spread"})
        assert len(steps) == 3 and steps[0] == 0
        assert any(key.startswith("gradient_sv.") for key, _, _ in o.output.curves)
    pretrained = {o.job.labels["source_epoch"]: o for o in outcomes if o.job.labels["treatment"] == "baseA"}
    assert sorted(pretrained) == [1, 3]
    first = [v for k, e, v in pretrained[3].output.curves if k == "test_accuracy" and e == 1]
    assert [v for k, _, v in pretrained[1].output.curves if k == "test_accuracy"] == first  # epoch 1 of the same run


def test_a_stopped_schedule_is_the_full_run_cut_short():
    spec = parse(TrainJobSpec, {"data": {"source": SYN}, "model": NET, "train": {"epochs": 4, "batch_size": 8}})
    full = train_job(spec, "cpu").result.history
    cut = train_job(spec.model_copy(update={"train": spec.train.model_copy(update={"stop_after": 2})}), "cpu")
    assert [r.test_accuracy for r in cut.result.history] == [r.test_accuracy for r in full[:2]]
    assert [r.lr for r in cut.result.history] == [r.lr for r in full[:2]]  # the same schedule, not a shorter one

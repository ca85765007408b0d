import pytest
import torch

from backend.checkpoints import save_checkpoint
from backend.specs import SpecError, TrainJobSpec, TransferJobSpec, parse
from backend.train import train_job
from backend.transfer import SourceNet, transfer_job

NET = {"arch": "convnet", "channels": [8, 16], "hidden": [16]}  # units conv1 conv2 fc1 classifier
TRAIN = {"epochs": 2, "batch_size": 64}


def data(half):
    return {"source": {"kind": "digits"}, "classes": {"half": half}}


@pytest.fixture(scope="module")
def base_a():
    spec = parse(TrainJobSpec, {"data": data("A"), "model": NET, "train": TRAIN})
    return spec, train_job(spec, "cpu")


def job(base_spec, n, **transfer):
    return parse(TransferJobSpec, {"data": data("B"), "model": NET, "train": {**TRAIN, "seed": 7},
                                   "source": base_spec.model_dump(), "transfer": {"n": n, **transfer}})


def unit_state(model, names):
    return {k: v.clone() for k, v in model.state_dict().items() if k.split(".")[1] in names}


def test_frozen_units_equal_the_source_after_training_batchnorm_included(base_a):
    spec, trained = base_a
    out = transfer_job(job(spec, 2), SourceNet.of(trained), "cpu")
    source = unit_state(trained.model, {"conv1", "conv2"})
    after = unit_state(out.model, {"conv1", "conv2"})
    assert any("running_var" in k for k in after)
    assert all(torch.equal(source[k], after[k]) for k in source)
    # the classifier was re-initialised for B and trained
    assert out.model.body["classifier"][-1].weight.shape[0] == 5


def test_fine_tuning_starts_from_the_source_and_moves(base_a):
    spec, trained = base_a
    copied = job(spec, 2, fine_tune=True)
    zero_epochs = copied.model_copy(update={"train": copied.train.model_copy(update={"epochs": 1, "lr": 1e-9})})
    start = transfer_job(zero_epochs, SourceNet.of(trained), "cpu")
    w_src = trained.model.body["conv2"][0].weight
    torch.testing.assert_close(start.model.body["conv2"][0].weight, w_src, atol=1e-6, rtol=0)
    moved = transfer_job(copied, SourceNet.of(trained), "cpu")
    assert not torch.allclose(moved.model.body["conv2"][0].weight, w_src)
    assert copied.treatment == "AnB+" and job(spec, 2).treatment == "AnB"


def test_n_zero_is_training_from_scratch(base_a):
    spec, trained = base_a
    scratch = transfer_job(job(spec, 0), SourceNet.of(trained), "cpu")
    plain = train_job(parse(TrainJobSpec, {"data": data("B"), "model": NET, "train": {**TRAIN, "seed": 7}}), "cpu")
    a, b = scratch.model.state_dict(), plain.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert job(spec, 0).treatment == "scratch"


@pytest.mark.parametrize("n", [1, 2, 3])
def test_cached_prefix_and_slow_path_agree(base_a, n):
    spec, trained = base_a
    fast = transfer_job(job(spec, n), SourceNet.of(trained), "cpu")
    slow = transfer_job(job(spec, n, cache_prefix=False), SourceNet.of(trained), "cpu")
    a, b = fast.model.state_dict(), slow.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)
    assert [r.test_accuracy for r in fast.result.history] == pytest.approx(
        [r.test_accuracy for r in slow.result.history], abs=1 / 180)


def test_random_frozen_control_keeps_its_random_units(base_a):
    spec, trained = base_a
    random = parse(TransferJobSpec, {"data": data("B"), "model": NET, "train": TRAIN, "transfer": {"n": 2, "init": "random"}})
    out = transfer_job(random, None, "cpu")
    again = transfer_job(random, None, "cpu")
    assert torch.equal(out.model.body["conv1"][0].weight, again.model.body["conv1"][0].weight)
    assert not torch.allclose(out.model.body["conv1"][0].weight, trained.model.body["conv1"][0].weight)
    assert random.treatment == "random"


def test_transfer_reproduces_with_its_seed(base_a):
    spec, trained = base_a
    a = transfer_job(job(spec, 1, fine_tune=True), SourceNet.of(trained), "cpu")
    b = transfer_job(job(spec, 1, fine_tune=True), SourceNet.of(trained), "cpu")
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())


def test_source_from_a_checkpoint_file(base_a, tmp_path):
    spec, trained = base_a
    path = save_checkpoint(tmp_path / "a", trained.model, {"normalization": {
        "mean": trained.normalization.mean, "std": trained.normalization.std}})
    from_file = transfer_job(job(spec, 2), SourceNet.load(str(path)), "cpu")
    in_memory = transfer_job(job(spec, 2), SourceNet.of(trained), "cpu")
    assert from_file.result.final_accuracy == in_memory.result.final_accuracy


def test_n_beyond_the_network_names_the_field(base_a):
    spec, _ = base_a
    with pytest.raises(SpecError) as info:
        job(spec, 4)
    assert info.value.field == "transfer.n" and "n runs 0..3" in str(info.value)


def test_bad_transfer_specs(base_a):
    spec, _ = base_a
    with pytest.raises(SpecError) as info:
        parse(TransferJobSpec, {"data": data("B"), "model": NET, "transfer": {"n": 2}})
    assert info.value.field == "source"
    with pytest.raises(SpecError) as info:
        parse(TransferJobSpec, {"data": data("B"), "model": {**NET, "channels": [8, 32]}, "transfer": {"n": 2},
                                "source": spec.model_dump()})
    assert info.value.field == "source.model"
    with pytest.raises(SpecError) as info:
        parse(TransferJobSpec, {"data": data("B"), "model": NET, "transfer": {"n": 1, "init": "random", "fine_tune": True}})
    assert info.value.field == "transfer.fine_tune"


def test_checkpoint_of_another_architecture_is_refused(base_a, tmp_path):
    spec, _ = base_a
    other = train_job(parse(TrainJobSpec, {"data": data("A"), "model": {"arch": "mlp", "hidden": [16]},
                                           "train": {"epochs": 1}}), "cpu")
    with pytest.raises(SpecError) as info:
        transfer_job(job(spec, 2), SourceNet.of(other), "cpu")
    assert info.value.field == "source" and "does not fit" in str(info.value)
    with pytest.raises(SpecError) as info:
        transfer_job(job(spec, 2), None, "cpu")
    assert info.value.field == "source"

"""Training memory estimated from the spec: exact parameter counts, and impossible jobs refused."""

import pytest

from backend.models import build_model
from backend.specs import SpecError, TrainJobSpec, YosinskiSpec, parse
from backend.specs.memory import check_fits, image_shape, network_cost


@pytest.mark.parametrize("model", [{"arch": "convnet", "channels": [8, 16, 32], "hidden": [64], "norm": norm}
                                   for norm in ("batch", "group", "none")] + [{"arch": "mlp", "hidden": [32, 16]}])
def test_the_parameter_count_is_the_network_s_own(model):
    spec = parse(TrainJobSpec, {"data": {"source": {"kind": "synthetic", "size": 12}, "channels": 1}, "model": model})
    shape = image_shape(spec.data)
    assert shape == (1, 12, 12)
    net = build_model(spec.model, shape, 7)
    assert network_cost(spec.model, shape, classes=7)[0] == sum(p.numel() for p in net.parameters())


def test_impossible_networks_and_batches_are_refused_with_the_estimate(monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_WORKER_MEMORY_GB", "16")
    digits = {"source": {"kind": "digits"}}
    check_fits(parse(TrainJobSpec, {"data": digits}))  # the default network fits
    with pytest.raises(SpecError, match=r"GiB to train .* a worker has 16 GiB") as err:
        check_fits(parse(TrainJobSpec, {"data": digits, "model": {"channels": [10**9]}}))
    assert err.value.field == "model"
    with pytest.raises(SpecError, match="shrink the network or the batch") as err:
        check_fits(parse(TrainJobSpec, {"data": digits, "train": {"batch_size": 10**12}}))
    assert err.value.field == "train.batch_size"


def test_submit_refuses_a_study_that_cannot_fit_and_queues_nothing(tmp_path, monkeypatch):
    from db.queue import Queue
    from db.session import get_engine
    from db.submit import submit_study

    monkeypatch.setenv("TRANSFERLAB_WORKER_MEMORY_GB", "4")
    queue = Queue(get_engine(f"sqlite:///{tmp_path / 'store.db'}"))
    study = parse(YosinskiSpec, {"data": {"source": {"kind": "digits"}}, "train": {"batch_size": 10**9}})
    with pytest.raises(SpecError, match="a worker has 4 GiB"):
        submit_study(queue, study)
    assert queue.counts() == {}

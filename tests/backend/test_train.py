import pytest
import torch

from backend.models import build_model
from backend.specs import ConvNetSpec, TrainJobSpec, TrainSpec, parse
from backend.train import Normalization, augment, evaluate, fit, resolve_device, train_job


def job(**train):
    return parse(TrainJobSpec, {
        "data": {"source": {"kind": "digits"}},
        "model": {"arch": "convnet", "channels": [16, 32], "hidden": [32]},
        "train": {"epochs": 2, "batch_size": 128, **train},
    })


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_convnet_learns_digits():
    trained = train_job(job(epochs=6), "cpu")
    history = trained.result.history
    assert len(history) == 6 and history[-1].test_accuracy > 0.9
    assert history[-1].train_loss < history[0].train_loss
    assert trained.result.best_mean(10) == pytest.approx(sum(r.test_accuracy for r in history) / 6)


def test_same_seed_reproduces_a_cpu_run_exactly():
    spec = job(augment="crop")
    a, b = train_job(spec, "cpu"), train_job(spec, "cpu")
    sa, sb = state(a.model), state(b.model)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.result.history[-1].test_loss == b.result.history[-1].test_loss
    c = train_job(job(augment="crop", seed=1), "cpu")
    assert not torch.equal(state(c.model)["body.conv1.0.weight"], sa["body.conv1.0.weight"])


def test_frozen_units_do_not_change_batchnorm_statistics_included():
    trained = train_job(job(epochs=1), "cpu")
    model = trained.model.freeze(2)
    before = state(model)
    data = trained.data
    norm = Normalization.of(data.train)
    fit(model, norm.apply(data.train, torch.device("cpu"), True), norm.apply(data.test, torch.device("cpu"), True),
        TrainSpec(epochs=1, weight_decay=0.1))
    after = state(model)
    frozen = [k for k in before if k.startswith(("body.conv1.", "body.conv2."))]
    assert any("running_mean" in k for k in frozen)
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert not torch.equal(before["body.fc1.1.weight"], after["body.fc1.1.weight"])


def test_weight_decay_skips_biases_and_norms():
    # With the classifier's weight at zero no gradient reaches the layers below it, so in one
    # step they move by weight decay alone: the conv kernel must shrink, the BN scale must not.
    torch.manual_seed(0)
    net = build_model(ConvNetSpec(channels=[4], hidden=[]), (1, 8, 8), 2)
    x = torch.randn(4, 1, 8, 8)
    y = torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        net.body["classifier"][-1].weight.zero_()
        net.body["classifier"][-1].bias.zero_()
    before = state(net)
    fit(net, (x, y), (x, y), TrainSpec(epochs=1, batch_size=4, lr=0.1, momentum=0, weight_decay=0.5,
                                       schedule="constant", channels_last=False))
    after = state(net)
    assert (after["body.conv1.0.weight"].abs() < before["body.conv1.0.weight"].abs()).all()
    assert torch.equal(after["body.conv1.1.weight"], before["body.conv1.1.weight"])  # BN scale


def test_evaluate_counts_correct_predictions():
    net = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.eye(2))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    loss, acc = evaluate(net, x, torch.tensor([0, 1, 1, 1]), batch_size=3)
    assert acc == 0.75 and loss > 0


def test_augment_translates_within_the_padding_and_is_seeded():
    x = torch.zeros(64, 1, 9, 9)
    x[:, :, 4, 4] = 1  # one lit pixel in the centre
    g = torch.Generator().manual_seed(0)
    out = augment(x, flip=True, generator=g)
    assert out.shape == x.shape and out.sum() == 64
    where = out[:, 0].flatten(1).argmax(1)
    rows, cols = where // 9, where % 9
    assert rows.min() >= 2 and rows.max() <= 6 and cols.min() >= 2 and cols.max() <= 6
    assert len(set(where.tolist())) > 5  # images moved independently
    again = augment(x, flip=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_progress_reports_epochs_and_steps():
    events = []
    train_job(job(epochs=2), "cpu", progress=events.append)
    evals = [e for e in events if e.phase == "eval"]
    assert [e.epoch for e in evals] == [1, 2] and all(0 <= e.accuracy <= 1 for e in evals)
    assert any(e.phase == "train" and e.step == e.steps for e in events)


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_resuming_from_a_saved_epoch_state_is_exact(tmp_path, optimizer):
    from backend.checkpoints import load_train_state, save_train_state

    spec = parse(TrainJobSpec, {"data": {"source": {"kind": "digits"}},
                                "model": {"channels": [8, 16], "hidden": [16], "dropout": 0.2},
                                "train": {"epochs": 4, "optimizer": optimizer, "augment": "crop", "lr": 0.01}})
    full = train_job(spec, "cpu")

    class Crash(Exception):
        pass

    def save_then_crash(state):
        save_train_state(tmp_path / "state.safetensors", state, "hash")
        if state.epoch == 2:
            raise Crash

    with pytest.raises(Crash):
        train_job(spec, "cpu", on_epoch=save_then_crash)
    assert load_train_state(tmp_path / "state.safetensors", "other hash") is None
    state = load_train_state(tmp_path / "state.safetensors", "hash")
    assert state.epoch == 2 and len(state.result.history) == 2
    resumed = train_job(spec, "cpu", resume=state)
    assert [r.epoch for r in resumed.result.history] == [1, 2, 3, 4]
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)

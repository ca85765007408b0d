"""Landscape smoothness, gradient principal component and optimisation speed: known answers from a
quadratic loss, a rank-one linear gradient and hand-made histories."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from backend.models import build_model
from backend.probes.smoothness import (best_epoch, curve_area, epochs_to_accuracy, gradient_top_singular_values,
                                       landscape_smoothness, speed_summary)
from backend.specs import ConvNetSpec


class Quadratic(nn.Module):
    """Outputs theta + c (c frozen), whatever the input: with `quadratic_loss`, L = 0.5 u^T A u, u = theta + c."""

    def __init__(self, theta: torch.Tensor, c: torch.Tensor):
        super().__init__()
        self.theta = nn.Parameter(theta.clone())
        self.c = nn.Parameter(c.clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.theta + self.c


def quadratic_loss(u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    return 0.5 * u @ a @ u


def spd_matrix(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return q @ torch.diag(torch.linspace(0.1, 3.0, n, dtype=torch.float64)) @ q.T  # eigenvalues 0.1..3


def small_convnet() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    net = build_model(ConvNetSpec(channels=[4, 8], hidden=[16]), (1, 8, 8), 3)
    return net, torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))


@pytest.mark.parametrize("c_scale", [0.0, 1.0])
def test_quadratic_closed_forms(c_scale):
    a = spd_matrix(5, seed=1)
    gen = torch.Generator().manual_seed(2)
    theta = torch.randn(5, generator=gen, dtype=torch.float64)
    c = c_scale * torch.randn(5, generator=gen, dtype=torch.float64)
    etas = (0.01, 0.1, 0.3, 0.7)
    s = landscape_smoothness(Quadratic(theta, c), torch.zeros(1), a, step_sizes=etas, loss_fn=quadratic_loss)
    u = theta + c
    g = a @ u  # only theta is trainable; dL/dtheta = A (theta + c)
    expected_losses = [0.5 * (u - eta * g) @ a @ (u - eta * g) for eta in etas]
    # g(theta - eta g) - g(theta) = -eta A g, so the change is eta ||A g|| and beta = ||A g|| / ||g||.
    ag = torch.linalg.vector_norm(a @ g).item()
    assert s.step_sizes == list(etas)
    assert s.loss == pytest.approx(0.5 * (u @ a @ u).item(), abs=1e-5)
    assert s.losses == pytest.approx([v.item() for v in expected_losses], abs=1e-5)
    assert s.loss_spread == pytest.approx(max(s.losses) - min(s.losses), abs=1e-12)
    assert s.gradient_norm == pytest.approx(torch.linalg.vector_norm(g).item(), abs=1e-5)
    assert s.gradient_change == pytest.approx([eta * ag for eta in etas], abs=1e-5)
    assert s.beta_smoothness == pytest.approx(ag / s.gradient_norm, abs=1e-5)
    assert s.beta_smoothness <= 3.0 + 1e-9  # at most A's top eigenvalue


def test_zero_gradient_and_bad_steps():
    a = spd_matrix(3, seed=3)
    at_minimum = Quadratic(torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    s = landscape_smoothness(at_minimum, torch.zeros(1), a, loss_fn=quadratic_loss)
    assert s.gradient_norm == 0 and s.beta_smoothness is None and s.loss_spread == 0
    with pytest.raises(ValueError, match="positive"):
        landscape_smoothness(at_minimum, torch.zeros(1), a, step_sizes=(0.0, 0.1), loss_fn=quadratic_loss)
    with pytest.raises(ValueError, match="trainable"):
        landscape_smoothness(at_minimum.requires_grad_(False), torch.zeros(1), a, loss_fn=quadratic_loss)


def test_convnet_left_exactly_as_it_was_and_measured_in_eval_mode():
    net, x, y = small_convnet()
    net.freeze(1).train()  # the frozen unit sits in eval while the rest trains: flags differ per module
    before = {k: v.clone() for k, v in net.state_dict().items()}
    flags = [m.training for m in net.modules()]
    requires = [p.requires_grad for p in net.parameters()]
    s = landscape_smoothness(net, x, y)
    after = net.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert [m.training for m in net.modules()] == flags and net.training
    assert [p.requires_grad for p in net.parameters()] == requires
    assert all(p.grad is None for p in net.parameters())
    with torch.no_grad():
        eval_loss = F.cross_entropy(net.eval()(x), y).item()
    net.train()
    assert s.loss == pytest.approx(eval_loss, rel=1e-6)
    assert len(s.losses) == len(s.gradient_change) == 5 and s.beta_smoothness > 0 and s.gradient_norm > 0
    # The frozen first unit is not part of theta: its gradient is left out of ||g||.
    trainable = [p for p in net.parameters() if p.requires_grad]
    loss = F.cross_entropy(net.eval()(x), y)
    norm = math.sqrt(sum(g.square().sum().item() for g in torch.autograd.grad(loss, trainable)))
    net.train()
    assert s.gradient_norm == pytest.approx(norm, rel=1e-5)


def test_linear_gradient_singular_value_by_hand():
    # One sample, L = 0.5 ||W x + b - t||^2: dL/dW = r x^T with r = W x + b - t, a rank-one matrix whose
    # only non-zero singular value is ||r|| ||x||.
    torch.manual_seed(0)
    lin = nn.Linear(3, 2).double()
    x, t = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64), torch.tensor([[0.3, -0.7]], dtype=torch.float64)
    r = (lin(x) - t).detach()
    values = gradient_top_singular_values(lin, x, t, loss_fn=lambda out, target: 0.5 * (out - target).square().sum(),
                                          units={"fc": lin})
    assert values.keys() == {"fc"}
    assert values["fc"] == pytest.approx((torch.linalg.vector_norm(r) * torch.linalg.vector_norm(x)).item(), abs=1e-9)


def test_unitnet_singular_values_match_autograd_and_svdvals():
    net, x, y = small_convnet()
    net.freeze(1).train()
    values = gradient_top_singular_values(net, x, y)
    assert list(values) == net.unit_names  # the frozen conv1 counts too
    net.eval()
    weights = {"conv1": net.body.conv1[0].weight, "conv2": net.body.conv2[0].weight,
               "fc1": net.body.fc1[1].weight, "classifier": net.body.classifier[0].weight}
    for unit, w in weights.items():
        w.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(net(x), y), [w])
        assert values[unit] == pytest.approx(torch.linalg.svdvals(grad.reshape(grad.shape[0], -1))[0].item(), rel=1e-5)
    assert all(p.grad is None for p in net.parameters())


def test_generic_module_skips_units_without_weights():
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    values = gradient_top_singular_values(seq, torch.randn(6, 4), torch.randint(0, 2, (6,)))
    assert list(values) == ["0", "2"] and all(v > 0 for v in values.values())
    with pytest.raises(ValueError, match="not a submodule"):
        gradient_top_singular_values(seq, torch.randn(6, 4), torch.randint(0, 2, (6,)), units={"x": nn.Linear(4, 5)})


def history(accuracies, epochs=None):
    epochs = epochs or range(1, len(accuracies) + 1)
    return [SimpleNamespace(epoch=e, test_accuracy=a, train_loss=1 - a) for e, a in zip(epochs, accuracies)]


def test_speed_on_a_hand_made_history():
    h = history([0.2, 0.5, 0.8, 0.9, 0.85])
    assert epochs_to_accuracy(h, 0.8) == 3 and epochs_to_accuracy(h, 0.5) == 2 and epochs_to_accuracy(h, 0.95) is None
    assert best_epoch(h) == 4
    # t = 0, 1/4, ..., 1: area = 1/4 (0.2/2 + 0.5 + 0.8 + 0.9 + 0.85/2) = 0.68125.
    assert curve_area(h) == pytest.approx(0.68125)
    assert curve_area(list(reversed(h))) == pytest.approx(0.68125)  # records are read in epoch order
    assert curve_area(history([0.7, 0.7, 0.7], epochs=[2, 5, 11])) == pytest.approx(0.7)
    assert curve_area(history([0.4])) == pytest.approx(0.4)
    # Best 0.9: thresholds 0.45, 0.81, 0.855, 0.891 -> epochs 2, 4, 4, 4.
    summary = speed_summary(h, targets=(0.5, 0.95))
    assert summary == {"epochs": 5, "best_epoch": 4, "best_accuracy": 0.9, "final_accuracy": 0.85,
                       "curve_area": pytest.approx(0.68125), "epochs_to_0.5_of_best": 2,
                       "epochs_to_0.9_of_best": 4, "epochs_to_0.95_of_best": 4, "epochs_to_0.99_of_best": 4,
                       "epochs_to_0.5": 2, "epochs_to_0.95": None}


def test_ties_and_empty_history():
    assert best_epoch(history([0.3, 0.6, 0.6, 0.5])) == 2  # the earliest of the best
    for fn in (best_epoch, curve_area, speed_summary):
        with pytest.raises(ValueError, match="empty"):
            fn([])
    with pytest.raises(ValueError, match="empty"):
        epochs_to_accuracy([], 0.5)
